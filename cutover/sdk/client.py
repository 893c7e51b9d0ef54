"""The application-side client: route a call to the baseline or the candidate, call it, report it.

    client = CutoverClient("https://cutover.internal", sdk_key=os.environ["CUTOVER_SDK_KEY"])
    result = client.complete("support-bot", request, routing_key=user_id)
    print(result.text, result.arm, result.fell_back)

`complete` never raises a Cutover-internal error: routing, reporting and mirroring failures are logged
and the call goes to the baseline. A candidate failure falls back to the baseline (reported as
`fell_back`). The baseline's own provider errors (ProviderError) reach the caller as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from cutover.providers.async_client import (
    AsyncCompletionStream,
    AsyncModelClient,
    make_async_client,
    pooled_http_client,
)
from cutover.providers.client import CompletionStream, ModelClient
from cutover.providers.errors import ErrorKind, ProviderError
from cutover.providers.http_pool import ConnectionPool
from cutover.providers.normalize import looks_like_refusal, normalize_output
from cutover.providers.prompt_adapters import apply_prompt_adapter
from cutover.providers.retry import RetryPolicy
from cutover.providers.types import ChatRequest, Completion, EndpointSpec
from cutover.routing import Arm, ConversationPins, Decision, Reason
from cutover.sdk.config import ConfigClient
from cutover.sdk.document import ArmConfig, PlanConfig
from cutover.sdk.reporter import BackgroundSender, event_reporter, shadow_mirror

logger = logging.getLogger("cutover.sdk")

# Provider-layer retries on the request path are kept short: a failing candidate falls back instead.
DEFAULT_RETRY_POLICY = RetryPolicy(max_retries=1, base_delay=0.2, max_delay=1.0, max_retry_after=2.0)


class PlanNotConfigured(LookupError):
    """The plan is in no config document and no baseline was given for it: there is nothing to call.
    A configuration error of the application (like an unknown model name), raised before any call."""


@dataclass(frozen=True, slots=True)
class Route:
    plan: str
    config: PlanConfig | None
    decision: Decision
    endpoint: EndpointSpec  # of the chosen arm
    prompt_adapter: str | None


@dataclass(frozen=True, slots=True)
class RoutedCompletion:
    """What `complete` returns. `text` is the answer after the output normaliser; `completion` is the
    provider's answer as it came; `arm` answered (after a fallback, the baseline); `chosen_arm` was routed to."""

    text: str
    completion: Completion
    plan: str
    arm: Arm
    chosen_arm: Arm
    fell_back: bool
    format_ok: bool
    refusal: bool
    request_id: str
    reason: Reason

    @property
    def model(self) -> str:
        return self.completion.model


class CutoverClient:
    """Routes, calls and reports. Thread-safe; make one per process and `close()` it at exit (it flushes).

    control_plane/sdk_key: where to poll and report (None: no control plane — bootstrap file or
    `baselines` only). `baselines`: the endpoint per plan key to call while no document knows the plan.
    """

    def __init__(self, control_plane: str | None, sdk_key: str = "", *, bootstrap_file: str | None = None,
                 baselines: Mapping[str, EndpointSpec] | None = None, config_wait: float = 30.0,
                 report: bool = True, mirror: bool = True, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
                 max_conversations: int = 100_000, event_queue_size: int = 10_000, event_batch_size: int = 100,
                 flush_interval: float = 1.0, max_workers: int = 32, start: bool = True,
                 config_options: Mapping[str, Any] | None = None, rand: Callable[[], float] = random.random) -> None:
        self._models: dict[EndpointSpec, ModelClient] = {}
        self._async_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncPool] = \
            weakref.WeakKeyDictionary()
        self.retry_policy = retry_policy
        self.config = ConfigClient(control_plane or "http://invalid.", sdk_key, bootstrap_file=bootstrap_file,
                                   wait=config_wait, on_change=self._warm_up, **dict(config_options or {}))
        self.baselines = dict(baselines or {})
        self.pins = ConversationPins(max_conversations)
        self._rand = rand
        self.reporter: BackgroundSender | None = None
        self.mirror: BackgroundSender | None = None
        if control_plane and report:
            self.reporter = event_reporter(control_plane, sdk_key, max_queue=event_queue_size,
                                           batch_size=event_batch_size, flush_interval=flush_interval)
        if control_plane and mirror:
            self.mirror = shadow_mirror(control_plane, sdk_key)
        self._control_plane = control_plane
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cutover-call")
        if start:
            self.start()

    def start(self) -> CutoverClient:
        if self._control_plane:
            self.config.start()
        for sender in (self.reporter, self.mirror):
            if sender is not None:
                sender.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop polling, flush events and shadow samples (up to `timeout` seconds each)."""
        self.config.close()
        for sender in (self.reporter, self.mirror):
            if sender is not None:
                sender.close(timeout)
        self._executor.shutdown(wait=False)

    def __enter__(self) -> CutoverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- routing -------------------------------------------------------------------------------------

    def route(self, plan: str, *, routing_key: str | None = None, conversation_id: str | None = None) -> Route:
        """The arm for one request (never raises except PlanNotConfigured)."""
        config = self.config.plan(plan)
        if config is None:
            endpoint = self.baselines.get(plan)
            if endpoint is None:
                raise PlanNotConfigured(f"plan {plan!r} is in no config document"
                                        f" ({self.config.state.value}) and has no baseline given")
            return Route(plan, None, Decision(Arm.BASELINE, Reason.NO_CONFIG), endpoint, None)
        try:
            decision = self.pins.route(plan=plan, conversation_id=conversation_id,
                                       candidate_percent=config.candidate_percent, rollback=config.rollback,
                                       salt=config.salt, routing_key=routing_key, rand=self._rand)
        except Exception:  # a bug in routing must not reach the application
            logger.exception("cutover: routing failed; using the baseline")
            decision = Decision(Arm.BASELINE, Reason.ERROR)
        arm = config.arm(decision.arm)
        return Route(plan, config, decision, arm.endpoint, arm.prompt_adapter)

    # --- calls ---------------------------------------------------------------------------------------

    def model_client(self, endpoint: EndpointSpec) -> ModelClient:
        client = self._models.get(endpoint)
        if client is None:
            client = self._models[endpoint] = ModelClient(endpoint, retry_policy=self.retry_policy)
        return client

    def async_model_client(self, endpoint: EndpointSpec) -> AsyncModelClient:
        """The endpoint's client for the running event loop (connection pools belong to one loop)."""
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            pool = self._async_pools[loop] = _AsyncPool(pooled_http_client(), {})
        client = pool.clients.get(endpoint)
        if client is None:
            client = pool.clients[endpoint] = make_async_client(
                endpoint, retry_policy=self.retry_policy, http=pool.http,
                sync_client=partial(self.model_client, endpoint), executor=self._executor)
        return client

    async def aclose(self) -> None:
        """Close the running loop's connection pool (the sidecar does, when it stops serving)."""
        pool = self._async_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.http.aclose()

    def _warm_up(self, document: Any) -> None:
        """Build each endpoint's client as soon as a document names it, so that the first request routed to
        an arm (after a rollback, say) does not pay for importing its provider's SDK. In its own thread:
        the poller must get back to its long-poll at once."""
        threading.Thread(target=self._build_clients, args=(document,), name="cutover-warm-up", daemon=True).start()

    def _build_clients(self, document: Any) -> None:
        for plan in document.plans.values():
            for arm in (plan.baseline, plan.candidate):
                try:
                    self.model_client(arm.endpoint)
                except Exception:
                    logger.exception("cutover: cannot build a client for %s", arm.endpoint.model)

    @staticmethod
    def prepare(arm: ArmConfig | None, request: ChatRequest, task: str | None) -> ChatRequest:
        """The request as the arm's prompt adapter rewrites it (unchanged if the adapter is unknown or fails)."""
        if arm is None or arm.prompt_adapter is None:
            return request
        try:
            return apply_prompt_adapter(arm.prompt_adapter, request, task=task)
        except Exception:
            logger.exception("cutover: prompt adapter %r failed; sending the request unchanged", arm.prompt_adapter)
            return request

    def _arm_request(self, route: Route, arm: Arm, request: ChatRequest, task: str | None
                     ) -> tuple[EndpointSpec, ChatRequest]:
        """The endpoint to call for `arm` and the request as its prompt adapter rewrites it."""
        if route.config is None:
            return route.endpoint, request
        arm_config = route.config.arm(arm)
        return arm_config.endpoint, self.prepare(arm_config, request, task)

    def _call(self, route: Route, arm: Arm, request: ChatRequest, task: str | None, stream: bool) -> Completion:
        endpoint, prepared = self._arm_request(route, arm, request, task)
        return self.model_client(endpoint).complete(prepared, stream=stream)

    async def _acall(self, route: Route, arm: Arm, request: ChatRequest, task: str | None,
                     stream: bool) -> Completion:
        endpoint, prepared = self._arm_request(route, arm, request, task)
        return await self.async_model_client(endpoint).complete(prepared, stream=stream)

    def complete(self, plan: str, request: ChatRequest, *, routing_key: str | None = None,
                 conversation_id: str | None = None, segment: str | None = None, task: str | None = None,
                 safe_to_repeat: bool = True, stream: bool = False) -> RoutedCompletion:
        """Route, call (with the arm's prompt adapter), normalise, report and maybe mirror one request.

        `stream=True` streams from the provider (so time to first token is measured) and returns the whole
        answer. Raises the baseline's ProviderError as it is; PlanNotConfigured if there is nothing to call.
        """
        route = self.route(plan, routing_key=routing_key, conversation_id=conversation_id)
        steps = self._routed_call(route, request, segment, safe_to_repeat, task)
        arm = next(steps)
        while True:
            try:
                completion = self._call(route, arm, request, task, stream)
            except Exception as error:
                step = partial(steps.throw, error)
            else:
                step = partial(steps.send, completion)
            try:
                arm = step()
            except StopIteration as done:
                return done.value

    async def acomplete(self, plan: str, request: ChatRequest, *, routing_key: str | None = None,
                        conversation_id: str | None = None, segment: str | None = None, task: str | None = None,
                        safe_to_repeat: bool = True, stream: bool = False) -> RoutedCompletion:
        """`complete` for asyncio code. OpenAI-format arms are called on the event loop over pooled raw HTTP
        (no thread, no official SDK); other providers through their official SDKs in the client's thread pool."""
        route = self.route(plan, routing_key=routing_key, conversation_id=conversation_id)
        steps = self._routed_call(route, request, segment, safe_to_repeat, task)
        arm = next(steps)
        while True:
            try:
                completion = await self._acall(route, arm, request, task, stream)
            except Exception as error:
                step = partial(steps.throw, error)
            else:
                step = partial(steps.send, completion)
            try:
                arm = step()
            except StopIteration as done:
                return done.value

    def _routed_call(self, route: Route, request: ChatRequest, segment: str | None, safe_to_repeat: bool,
                     task: str | None = None) -> Generator[Arm, Completion, RoutedCompletion]:
        """Fallback, result, event and shadow sample of one call, whatever calls the arms: yields the arm to
        call next, is sent its Completion or thrown its error, returns the result. `complete` drives it
        synchronously and `acomplete` on the event loop, so both behave alike by construction."""
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        chosen = route.decision.arm
        if chosen is Arm.CANDIDATE:
            try:
                completion = yield Arm.CANDIDATE
            except Exception as error:  # a provider failure or a bug on the candidate's side: fall back
                failed_ms = (time.perf_counter() - started) * 1000
                if not isinstance(error, ProviderError):
                    logger.error("cutover: the candidate call failed unexpectedly; falling back", exc_info=error)
                try:
                    completion = yield Arm.BASELINE
                except ProviderError:
                    self._report_failure(route, request_id, Arm.CANDIDATE, error, failed_ms, segment, fell_back=True)
                    raise
                self._report_failure(route, request_id, Arm.CANDIDATE, error, failed_ms, segment, fell_back=True)
                return self._result(route, request_id, request, completion, Arm.BASELINE, fell_back=True)
        else:
            try:
                completion = yield Arm.BASELINE
            except ProviderError as error:
                self._report_failure(route, request_id, Arm.BASELINE, error,
                                     (time.perf_counter() - started) * 1000, segment, fell_back=False)
                raise
        result = self._result(route, request_id, request, completion, chosen, fell_back=False)
        self._report_success(route, result, segment)
        if chosen is Arm.BASELINE:
            self._maybe_mirror(route, request, completion, request_id, segment, safe_to_repeat, task)
        return result

    def stream(self, plan: str, request: ChatRequest, *, routing_key: str | None = None,
               conversation_id: str | None = None, segment: str | None = None, task: str | None = None,
               safe_to_repeat: bool = True) -> RoutedStream:
        """Iterate for text as it arrives; `.result` once done. A candidate that fails before its first
        text falls back to the baseline; a failure after text was delivered raises ProviderError."""
        route = self.route(plan, routing_key=routing_key, conversation_id=conversation_id)
        return RoutedStream(self, route, request, segment=segment, task=task, safe_to_repeat=safe_to_repeat)

    def astream(self, plan: str, request: ChatRequest, *, routing_key: str | None = None,
                conversation_id: str | None = None, segment: str | None = None, task: str | None = None,
                safe_to_repeat: bool = True) -> AsyncRoutedStream:
        """`stream` for asyncio code (`async for text in ...`), called as `acomplete` calls."""
        route = self.route(plan, routing_key=routing_key, conversation_id=conversation_id)
        return AsyncRoutedStream(self, route, request, segment=segment, task=task, safe_to_repeat=safe_to_repeat)

    # --- results, events, shadow ---------------------------------------------------------------------

    def _result(self, route: Route, request_id: str, request: ChatRequest, completion: Completion, answered: Arm,
                *, fell_back: bool) -> RoutedCompletion:
        try:
            normalized = normalize_output(completion.text, request.response_format)
            text, format_ok = normalized.text, normalized.format_ok
            refusal = looks_like_refusal(completion.text)
        except Exception:
            logger.exception("cutover: output normaliser failed; returning the raw text")
            text, format_ok, refusal = completion.text, False, False
        if completion.tool_calls and not text:
            format_ok = True  # a tool call is an answer in the right shape
        return RoutedCompletion(text=text, completion=completion, plan=route.plan, arm=answered,
                                chosen_arm=route.decision.arm, fell_back=fell_back, format_ok=format_ok,
                                refusal=refusal, request_id=request_id, reason=route.decision.reason)

    def _report(self, event: dict[str, Any]) -> None:
        if self.reporter is None:
            return
        try:
            self.reporter.record(event)
        except Exception:
            logger.exception("cutover: could not queue an event")

    def _report_success(self, route: Route, result: RoutedCompletion, segment: str | None) -> None:
        if route.config is None:
            return  # the control plane does not know this plan: nothing it could accept
        completion = result.completion
        self._report(make_event(id=result.request_id, plan=route.plan, arm=result.chosen_arm,
                                latency_ms=completion.latency_ms, ttft_ms=completion.ttft_ms, outcome="ok",
                                input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                                retries=completion.retries, fell_back=False, format_ok=result.format_ok,
                                refusal=result.refusal, segment=segment))

    def _report_failure(self, route: Route, request_id: str, arm: Arm, error: BaseException, latency_ms: float,
                        segment: str | None, *, fell_back: bool) -> None:
        if route.config is None:
            return
        kind = error.kind if isinstance(error, ProviderError) else None
        self._report(make_event(id=request_id, plan=route.plan, arm=arm, latency_ms=latency_ms, ttft_ms=None,
                                outcome="timeout" if kind is ErrorKind.TIMEOUT else "error",
                                error_type=kind.value if kind else "sdk_error", input_tokens=0, output_tokens=0,
                                retries=getattr(error, "retries", 0), fell_back=fell_back, format_ok=None,
                                refusal=False, segment=segment))

    def _maybe_mirror(self, route: Route, request: ChatRequest, completion: Completion, request_id: str,
                      segment: str | None, safe_to_repeat: bool, task: str | None = None) -> None:
        config = route.config
        if self.mirror is None or config is None or config.shadow_sample_rate <= 0:
            return
        try:
            if not safe_to_repeat or self._rand() >= config.shadow_sample_rate:
                return
            if (request.tools or completion.tool_calls) and not config.shadow_tool_calls:
                return  # the candidate might call a side-effecting tool
            self.mirror.record(shadow_body(route.plan, request, completion, request_id, segment, task=task))
        except Exception:
            logger.exception("cutover: could not queue a shadow sample")


class _RoutedStreamBase:
    """What a streamed, routed call decides and reports, whether read synchronously or from asyncio: a
    candidate that fails before its first text falls back to the baseline; a failure after text was
    delivered is raised (and reported, unless after a fallback, whose event is already queued)."""

    def __init__(self, client: CutoverClient, route: Route, request: ChatRequest, *, segment: str | None,
                 task: str | None, safe_to_repeat: bool) -> None:
        self.client = client
        self.route = route
        self.request = request
        self.segment = segment
        self.task = task
        self.safe_to_repeat = safe_to_repeat
        self.request_id = str(uuid.uuid4())
        self.answered: Arm = route.decision.arm
        self.fell_back = False
        self._result: RoutedCompletion | None = None

    @property
    def result(self) -> RoutedCompletion:
        if self._result is None:
            raise RuntimeError("the stream has not been read to the end yet")
        return self._result

    def _fallback_after(self, error: Exception, started: float) -> Arm | None:
        """The chosen arm failed before its first text: report it; the arm to open instead, or None when
        there is none (the caller re-raises)."""
        failed_ms = (time.perf_counter() - started) * 1000
        chosen = self.route.decision.arm
        if chosen is not Arm.CANDIDATE:
            if isinstance(error, ProviderError):
                self.client._report_failure(self.route, self.request_id, chosen, error, failed_ms, self.segment,
                                            fell_back=False)
            return None
        self.fell_back, self.answered = True, Arm.BASELINE
        self.client._report_failure(self.route, self.request_id, Arm.CANDIDATE, error, failed_ms, self.segment,
                                    fell_back=True)
        return Arm.BASELINE

    def _broke(self, error: ProviderError, started: float) -> None:
        if not self.fell_back:
            self.client._report_failure(self.route, self.request_id, self.route.decision.arm, error,
                                        (time.perf_counter() - started) * 1000, self.segment, fell_back=False)

    def _finished(self, completion: Completion) -> None:
        client, route = self.client, self.route
        self._result = client._result(route, self.request_id, self.request, completion, self.answered,
                                      fell_back=self.fell_back)
        if not self.fell_back:
            client._report_success(route, self._result, self.segment)
            if route.decision.arm is Arm.BASELINE:
                client._maybe_mirror(route, self.request, completion, self.request_id, self.segment,
                                     self.safe_to_repeat, self.task)


class RoutedStream(_RoutedStreamBase):
    """A streamed, routed call: iterate for the text; `result` once the iteration ended."""

    def _open(self, arm: Arm) -> tuple[CompletionStream, Iterator[str], str | None]:
        """Open the arm's stream and read up to its first text (errors before that surface here)."""
        endpoint, prepared = self.client._arm_request(self.route, arm, self.request, self.task)
        stream = self.client.model_client(endpoint).stream(prepared)
        pieces = iter(stream)
        first = next(pieces, None)
        return stream, pieces, first

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        try:
            stream, pieces, first = self._open(self.route.decision.arm)
        except Exception as error:
            fallback = self._fallback_after(error, started)
            if fallback is None:
                raise
            stream, pieces, first = self._open(fallback)
        try:
            if first is not None:
                yield first
            yield from pieces
        except ProviderError as error:
            self._broke(error, started)
            raise
        self._finished(stream.completion)


class AsyncRoutedStream(_RoutedStreamBase):
    """`RoutedStream` for asyncio: `async for text in stream`; `result` once the iteration ended."""

    async def _open(self, arm: Arm) -> tuple[AsyncCompletionStream, AsyncIterator[str], str | None]:
        endpoint, prepared = self.client._arm_request(self.route, arm, self.request, self.task)
        stream = self.client.async_model_client(endpoint).stream(prepared)
        pieces = aiter(stream)
        first = await anext(pieces, None)
        return stream, pieces, first

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        started = time.perf_counter()
        try:
            stream, pieces, first = await self._open(self.route.decision.arm)
        except Exception as error:
            fallback = self._fallback_after(error, started)
            if fallback is None:
                raise
            stream, pieces, first = await self._open(fallback)
        try:
            if first is not None:
                yield first
            async for text in pieces:
                yield text
        except ProviderError as error:
            self._broke(error, started)
            raise
        self._finished(stream.completion)


@dataclass(slots=True)
class _AsyncPool:
    """One event loop's HTTP connection pool and the async clients sharing it."""

    http: ConnectionPool
    clients: dict[EndpointSpec, AsyncModelClient]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(*, id: str, plan: str, arm: Arm, latency_ms: float, ttft_ms: float | None, outcome: str,
               input_tokens: int, output_tokens: int, retries: int, fell_back: bool, format_ok: bool | None,
               refusal: bool, segment: str | None, error_type: str | None = None) -> dict[str, Any]:
    """One per-request event in the INTERFACES.md shape."""
    return {"id": id, "plan": plan, "arm": arm.value, "ts": _now_iso(), "latency_ms": round(latency_ms, 3),
            "ttft_ms": round(ttft_ms, 3) if ttft_ms is not None else None, "outcome": outcome,
            "error_type": error_type, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "retries": retries, "fell_back": fell_back, "format_ok": format_ok, "refusal": refusal,
            "segment": segment or None}


def shadow_body(plan: str, request: ChatRequest, completion: Completion, request_id: str,
                segment: str | None, *, task: str | None = None) -> dict[str, Any]:
    """The POST /api/v1/sdk/shadow body: the request as the application made it (with its `task`, so the
    candidate's prompt adapter rewrites it in the shadow call as it would live) and the baseline's answer."""
    messages = ([{"role": "system", "content": request.system}] if request.system else []) + [
        {"role": m.role, "content": m.content} for m in request.messages]
    params: dict[str, Any] = {}
    for name in ("max_tokens", "temperature"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop:
        params["stop"] = list(request.stop)
    if request.response_format != "text":
        params["response_format"] = request.response_format
    if request.tools:
        params["tools"] = [dataclasses.asdict(tool) | {"parameters": dict(tool.parameters)} for tool in request.tools]
    if task is not None:
        params["task"] = task
    return {"plan": plan, "request": {"messages": messages, "params": params},
            "baseline": {"text": completion.text, "latency_ms": round(completion.latency_ms, 3),
                         "input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens,
                         "model": completion.model},
            "request_id": request_id, "segment": segment or None, "ts": _now_iso()}
