"""Dynamic batching: concurrent requests to one model merged into one predict call.

The story, end to end, in the worker:

1. **The inbox groups frames** (``server/worker/inbox.py``). The worker keeps the requests it has
   read but not yet started in an inbox: a request to a model with fewer than ``concurrency``
   predicts running is started at once, exactly as without batching, so a lone request never
   waits; requests that arrive while that many run wait there, and when one ends its thread takes
   every request of that model waiting, up to ``max_batch_size``, as one group. ``max_delay_ms``
   above 0 makes a group wait that long for company before predicting: more rows per call, at
   that much latency to each group's first request. Waiting requests are frames in a queue, not
   threads: a worker's few threads merge as many requests as arrive.
2. **Each request is decoded alone** (``handlers.serving``), then its input becomes mergeable
   rows: the framework's ``BatchSpec.rows`` says how many rows it holds and under which key
   (``rows``: the spec and the helpers frameworks build theirs from).
3. **The group's rows of one key are merged into one predict call** (``group.Batcher``), of at
   most ``max_batch_size`` rows, and **the prediction is split back** one per request
   (``merge``: concatenating inputs, cutting predictions). A merged predict that fails is
   retried request by request, so a bad request fails alone; a model whose prediction does not
   keep one row per input row is not batched again.
4. **Each request's share is encoded alone** and answered with ``batch`` (how many requests
   shared the call) in its reply.

``concurrency`` is 1 by default: measured on 2 cores, a second predict of the same model competes
with the first for the worker's interpreter and leaves smaller batches (scikit-learn at 8 clients
and a small TorchScript MLP at 32 both gave more with 1).

Settings (``settings``): ``MODEL_SERVER_BATCH_MAX_SIZE`` (1 turns batching off) and
``MODEL_SERVER_BATCH_MAX_DELAY_MS`` for every model, and per model ``batching.json`` in its
directory: ``{"enabled": true, "max_batch_size": 32, "max_delay_ms": 0, "concurrency": 2}``,
each key optional.

Import the module you use; this package imports none of them (the front imports ``rows``, through
the handler modules, and must not pay for the rest).
"""
