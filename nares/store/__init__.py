"""Storage of the dataset: Parquet tables (`tables`), the S3 object store for checkpoints and releases
(`objects`, `settings`) and the ingest of finished runs (`ingest`).

Must not import torch, Prefect, Ray or the app (the embedded S3 server is `factory.local_s3`); `boto3` is
imported only by the modules that talk to S3.
"""
