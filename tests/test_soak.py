"""Two minutes of ``benchmarks/soak.py``: 200 models of four frameworks under Zipf traffic, a churn
of loads and unloads, a worker SIGKILLed every 30 s, a poison model, slow clients. Every answer is
checked against the model's own output; nothing may be lost beyond the requests in flight in a
killed worker, and the processes' memory, descriptors and threads must stay flat."""

from benchmarks import soak


def test_two_minutes_of_faults_lose_nothing_and_leak_nothing(tmp_path):
    args = soak.parser().parse_args(["--minutes", "2", "--models", "200", "--clients", "4", "--poison-every", "40"])
    result = soak.soak(args, tmp_path)
    soak.print_result(result)
    assert result["sigkills"] >= 3 and result["quarantines"] >= 1 and result["churned"] >= 20, result
    assert soak.failures(result) == []
