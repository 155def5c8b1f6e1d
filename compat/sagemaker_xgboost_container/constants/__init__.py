"""Constants of the AWS XGBoost container."""
