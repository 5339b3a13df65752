"""Storage of the dataset: Parquet tables (`tables`), the S3 object store for checkpoints and releases
(`objects`, `settings`, `local_server`) and the ingest of finished runs (`ingest`).

Nothing here imports torch; `boto3` is imported only by the modules that talk to S3.
"""
