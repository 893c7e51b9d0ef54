"""Every write: validate in the domain, lock, save, audit, bump the config version, follow up on commit."""
