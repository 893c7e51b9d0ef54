"""Provider API keys never enter Cutover's database: endpoints store the *name* of an environment variable.
These checks refuse a request that carries what looks like a key value instead."""

import re

ENV_VAR_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
# Prefixes of the key formats of common providers (OpenAI, Anthropic, Google, Groq, xAI, HF, Replicate…).
KEY_PREFIXES = ("sk-", "sk_", "AIza", "gsk_", "xai-", "hf_", "r8_", "pk-", "key-")
# Parameter names that would carry a credential inside default params.
SECRET_PARAM_NAMES = re.compile(r"(api[_-]?key|secret|token|password|authorization|credential)", re.I)


def api_key_env_problem(value: str) -> str | None:
    """Why `value` is not an acceptable environment variable name, or None."""
    if value.startswith(KEY_PREFIXES) or (len(value) >= 24 and not ENV_VAR_NAME.match(value)):
        return (
            "this looks like an API key value; store the name of the environment variable that holds "
            "the key (for example OPENAI_API_KEY), never the key itself"
        )
    if not ENV_VAR_NAME.match(value):
        return "must be an environment variable name: upper-case letters, digits and _ (e.g. OPENAI_API_KEY)"
    return None


def secret_param_names(params: dict) -> list[str]:
    """The keys of `params` (recursively) whose names say they hold a credential."""
    found = []
    for name, value in params.items():
        if SECRET_PARAM_NAMES.search(str(name)):
            found.append(str(name))
        if isinstance(value, dict):
            found.extend(f"{name}.{inner}" for inner in secret_param_names(value))
    return found


def url_has_credentials(url: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*@", url, re.I))
