"""``sagemaker_xgboost_container``: the names inference scripts written for the AWS XGBoost
container import, over this server's own codecs (docs/compat.md lists them).

``encoder`` (``decode``, ``csv_to_dmatrix``, ``libsvm_to_dmatrix``, ``recordio_protobuf_to_dmatrix``,
``json_to_dmatrix``, ``json_to_jsonlines``), ``data_utils`` (content-type names,
``get_content_type``) and ``constants.xgb_content_types`` have content; ``distributed`` and
``data_utils.get_dmatrix`` are training tools, importable so that scripts importing them load.
"""
