"""Security headers Django 5.2 does not send itself (it has no Content-Security-Policy; Django 6 will)."""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """settings.CUTOVER_CONTENT_SECURITY_POLICY on HTML responses, but under the exempt path prefixes."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CUTOVER_CONTENT_SECURITY_POLICY
        if (policy and "Content-Security-Policy" not in response
                and response.get("Content-Type", "").startswith("text/html")
                and not any(request.path.startswith(prefix)
                            for prefix in settings.CUTOVER_CONTENT_SECURITY_POLICY_EXEMPT)):
            response["Content-Security-Policy"] = policy
        return response
