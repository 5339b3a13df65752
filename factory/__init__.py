"""The application: the composition root of the factory.

Owns the `nares` command line (`factory.cli`, one module per command group in `factory.commands`), the
supervision of the embedded stack's processes (`factory.stack`: local S3, Prefect server and worker, Ray
head), the local S3 server (`factory.local_s3`) and process helpers by PID (`factory.procs`). It may import
the library, `tasks` and `flows`; nothing imports it: `nares`, `tasks` and `flows` must not import `factory`.
"""
