"""Settings: the typed model, the one loader of `config.toml`, plan checks, secrets.

    model.py    the typed settings (Config, JobConfig, …) and ConfigError
    loader.py   the only place TOML is read: parsed and validated once, the job kinds handed in
    plan.py     would the configured jobs exceed a Kakao quota on their busiest day?
    secrets.py  secrets from $CREDENTIALS_DIRECTORY (systemd) or the environment, never from the file

May import kakao, shopify and util; not store (above it), jobs or anything higher.
"""
