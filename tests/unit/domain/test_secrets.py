import pytest

from migrations_app.domain.secrets import api_key_env_problem, secret_param_names, url_has_credentials


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_KEY_2", "A"])
def test_api_key_env__conventional_names__accepted(name):
    assert api_key_env_problem(name) is None


@pytest.mark.parametrize("value", [
    "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
    "gsk_abcdefghijklmnop",
    "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
])
def test_api_key_env__key_values__refused_as_looking_like_a_key(value):
    assert "looks like an API key" in api_key_env_problem(value)


def test_api_key_env__lower_case_name__refused_as_not_a_variable_name():
    assert "environment variable name" in api_key_env_problem("openai_key")


def test_secret_param_names__nested_credential__found_with_its_path():
    assert secret_param_names({"temperature": 0.2, "extra": {"api_key": "x"}}) == ["extra.api_key"]


def test_url_has_credentials__userinfo_in_url__detected():
    assert url_has_credentials("https://user:pass@llm.internal/v1")
    assert not url_has_credentials("https://llm.internal/v1")
