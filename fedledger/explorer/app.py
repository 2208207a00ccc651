"""The explorer web app: server-rendered pages, a JSON read API under /api/, live updates by SSE.

Pages and API share one read model (`service.Explorer`), so what the page shows is what the API
returns. No front-end build and no CDN: CSS and the small live-update script are inline, charts
are SVG drawn on the server, the heat map is a coloured table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fedledger.core.chain import ContractRevert, FedLedger, connect
from fedledger.core.storage import InvalidCID, NotFound, StorageError, Store, open_store, parse_cid
from fedledger.explorer.charts import colour, heat, heat_legend, line_chart
from fedledger.explorer.ledger import BadRequest, Ledger, NotFoundError
from fedledger.explorer.rpc import ChainReader, NodeUnavailable, RpcError
from fedledger.explorer.service import Explorer

log = logging.getLogger(__name__)

API_DESCRIPTION = """Read API of the fedledger block explorer.

Everything is read from the chain (anvil's `ots_*` namespace when present, plain `eth_*`
otherwise) and the FedLedger contract's views and events. Amounts in wei are decimal strings;
integers above 2^53 are strings too. Errors are `{"error": message, "status": code}`.

`/api/getBlockchain` and `/api/getLatestModel` are aliases in the spirit of BCS-FL's read API.
"""


def _fmt_time(ts: int | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _is_cid(value: object) -> bool:
    """Jinja test: link only strings that parse as CIDs (a submission may carry any string)."""
    try:
        parse_cid(str(value))
    except InvalidCID:
        return False
    return True


def _clock(ts: int | None) -> str:
    """Time of day only, UTC: enough inside one round, the date is in the title."""
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%H:%M:%S") if ts else ""


def _eth(value: str | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    v = int(value)
    if v == 0:
        return "0 ETH"
    text = f"{v / 10**18:.{digits}f}".rstrip("0").rstrip(".")
    return f"{text} ETH" if text != "0" else f"{v} wei"


def _short(value: str | None, n: int = 6) -> str:
    if not value:
        return ""
    return value if len(value) <= 2 * n + 3 else f"{value[: n + 2]}…{value[-n + 2 :]}"


def _pct(bps: int | None) -> str:
    return "" if bps is None else f"{bps / 100:.1f}%"


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("fedledger.explorer", "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(
        base=lambda v: str(v).split("?")[0],
        time=_fmt_time,
        clock=_clock,
        eth=_eth,
        short=_short,
        pct=_pct,
        heat=heat,
        colour=colour,
    )
    env.globals["heat_legend"] = heat_legend()
    env.tests["cid"] = _is_cid
    env.globals["line_chart"] = lambda *a, **kw: Markup(line_chart(*a, **kw))
    return env


class State:
    """What the routes share: the read model, the store and the template environment."""

    def __init__(self, explorer: Explorer, store: Store | None, poll_interval: float) -> None:
        self.explorer = explorer
        self.store = store
        self.poll_interval = poll_interval
        self.env = _templates()


TX_HASH = "^0x[0-9a-fA-F]{64}$"
ADDRESS = "^0x[0-9a-fA-F]{40}$"


def _documented(**schema: Any) -> Any:
    """A path parameter whose range or pattern the OpenAPI spec states, checked by the handler
    itself (its 400 says what is wrong in the explorer's words, not pydantic's)."""
    return PathParam(json_schema_extra=schema)


def create_app(
    *,
    rpc_url: str,
    manifest: str | Path,
    storage: str | None = None,
    metrics: str | Path | None = None,
    use_ots: bool | None = None,
    poll_interval: float = 0.5,
) -> FastAPI:
    """The explorer for the FedLedger deployment in `manifest` on the node at `rpc_url`.

    `storage` is an `open_store` spec for download links (None: no downloads); `metrics` is the
    simulation's per-round metrics JSON (file or directory); `use_ots=False` forces `eth_*`.
    """
    w3 = connect(rpc_url)
    data = json.loads(Path(manifest).read_text())
    deploy_block = int(data["contracts"]["FedLedger"].get("block", 0))
    fl = FedLedger.from_manifest(w3, manifest)
    reader = ChainReader(rpc_url, use_ots=use_ots)
    store = open_store(storage) if storage else None
    explorer = Explorer(reader, Ledger(reader, fl, deploy_block=deploy_block, metrics=metrics), store)
    return build_app(State(explorer, store, poll_interval))


def build_app(state: State) -> FastAPI:
    """Wire the routes of the explorer around a ready `State`."""
    app = FastAPI(
        title="fedledger explorer",
        version="0.1.0",
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",  # Swagger UI needs a CDN: own page below
    )
    app.state.fx = state
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    ex = state.explorer
    state.env.globals["contract"] = ex.ledger.address  # macros label the contract's address
    _errors(app, state)

    def page(request: Request, template: str, *, live: bool = False, title: str = "", **ctx: Any) -> HTMLResponse:
        # X-Fragment: the live-update script asks for the <main> content only
        fragment = request.headers.get("x-fragment") == "1"
        html = state.env.get_template(template).render(
            fragment=fragment, live=live, title=title, storage=state.store is not None, **ctx
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    # ---- API ------------------------------------------------------------------------------
    @app.get("/api/head", tags=["chain"], summary="Chain head, node capabilities, deployment")
    def api_head() -> dict[str, Any]:
        return ex.head()

    @app.get("/api/blocks", tags=["chain"], summary="Newest blocks (headers)")
    def api_blocks(
        limit: int = Query(20, ge=1, le=500),
        before: int | None = Query(None, ge=0, description="highest block to list"),
    ) -> list[dict[str, Any]]:
        return ex.recent_blocks(limit, before)

    @app.get("/api/blocks/{number}", tags=["chain"], summary="One block with its transactions")
    def api_block(number: int = _documented(minimum=0)) -> dict[str, Any]:
        return ex.block(number)

    @app.get("/api/tx/{tx_hash}", tags=["chain"], summary="One transaction: decoded call, events, status, gas, revert")
    def api_tx(tx_hash: str = _documented(pattern=TX_HASH)) -> dict[str, Any]:
        return ex.tx(tx_hash)

    @app.get(
        "/api/address/{address}", tags=["chain"], summary="Balance, fedledger roles and transactions of an address"
    )
    def api_address(
        address: str = _documented(pattern=ADDRESS), before: int = Query(0, ge=0), limit: int = Query(25, ge=1, le=200)
    ) -> dict[str, Any]:
        return ex.address(address, before, limit)

    @app.get("/api/tasks", tags=["tasks"], summary="Every task, newest first")
    def api_tasks() -> list[dict[str, Any]]:
        return ex.ledger.task_summaries()

    @app.get("/api/tasks/{task_id}", tags=["tasks"], summary="A task: parameters, clients, escrow, payouts, rounds")
    def api_task(task_id: int = _documented(minimum=1)) -> dict[str, Any]:
        return ex.ledger.task(task_id)

    @app.get("/api/tasks/{task_id}/rounds", tags=["tasks"], summary="Every round of a task")
    def api_rounds(task_id: int = _documented(minimum=1)) -> list[dict[str, Any]]:
        rounds: list[dict[str, Any]] = ex.ledger.task(task_id)["rounds"]
        return rounds

    @app.get(
        "/api/tasks/{task_id}/rounds/{round_}", tags=["tasks"], summary="One round: submissions, scores, votes, result"
    )
    def api_round(task_id: int = _documented(minimum=1), round_: int = _documented(minimum=1)) -> dict[str, Any]:
        return ex.ledger.round(task_id, round_)

    @app.get("/api/tasks/{task_id}/model", tags=["tasks"], summary="Latest global model of a task, with its CID")
    def api_model(task_id: int = _documented(minimum=1)) -> dict[str, Any]:
        return _with_download(ex.ledger.latest_model(task_id), state)

    @app.get("/api/cid/{cid}", tags=["storage"], summary="Where a CID appears on chain")
    def api_cid(cid: str) -> dict[str, Any]:
        return ex.cid(cid)

    @app.get("/api/search", tags=["chain"], summary="Resolve a block number, `task N`, hash, address or CID")
    def api_search(q: str = Query(json_schema_extra={"minLength": 1})) -> dict[str, Any]:
        return ex.search(q)

    @app.get("/api/getBlockchain", tags=["BCS-FL aliases"], summary="The chain's newest blocks with their transactions")
    def api_get_blockchain(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        head = ex.head()
        blocks = ex.recent_blocks(limit)
        for b in blocks:
            b["transactions"] = ex.block(b["number"])["transactions"] if b["tx_count"] else []
        return {"head": head, "length": head["block_number"] + 1, "blocks": blocks}

    @app.get("/api/getLatestModel", tags=["BCS-FL aliases"], summary="Latest global model (default: the newest task)")
    def api_get_latest_model(task: int | None = Query(None, ge=1)) -> dict[str, Any]:
        task_id = task if task is not None else ex.ledger.task_count()
        if task_id < 1:
            raise NotFoundError("no task has been published yet")
        return _with_download(ex.ledger.latest_model(task_id), state)

    @app.get("/api/stream", tags=["live"], summary="Server-sent events: `head` whenever a new block is mined")
    async def api_stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _head_events(request, ex, state.poll_interval),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        """The OpenAPI description rendered as one offline page (FastAPI's Swagger UI loads a CDN)."""
        spec = app.openapi()
        routes = []
        for path, methods in spec["paths"].items():
            for method, op in methods.items():
                params = [
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "required": p.get("required", False),
                        "type": _schema_type(p.get("schema", {})),
                        "description": p.get("description", ""),
                    }
                    for p in op.get("parameters", [])
                ]
                routes.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "summary": op.get("summary", ""),
                        "tag": (op.get("tags") or [""])[0],
                        "params": params,
                    }
                )
        return page(request, "api_docs.html", title="API", routes=routes, description=API_DESCRIPTION)

    # ---- storage ------------------------------------------------------------------------------
    @app.get("/ipfs/{cid}", tags=["storage"], summary="Download content by CID through the configured storage")
    def download(cid: str) -> Response:
        try:
            parse_cid(cid)
        except InvalidCID as exc:
            raise BadRequest(str(exc)) from None
        if state.store is None:
            raise NotFoundError("the explorer was started without --storage: no downloads")
        try:
            data = state.store.get(cid)  # verified against the CID by the store
        except NotFound:
            raise NotFoundError(f"{cid} is not in the configured storage") from None
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{cid}.safetensors"'},
        )

    # ---- pages --------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        return page(
            request,
            "home.html",
            live=True,
            head=ex.head(),
            tasks=ex.ledger.task_summaries(),
            blocks=ex.recent_blocks(15),
        )

    @app.get("/tasks", response_class=HTMLResponse, include_in_schema=False)
    def tasks_page(request: Request) -> HTMLResponse:
        return page(request, "tasks.html", live=True, title="Tasks", tasks=ex.ledger.task_summaries())

    @app.get("/blocks", response_class=HTMLResponse, include_in_schema=False)
    def blocks_page(request: Request, before: int | None = Query(None, ge=0)) -> HTMLResponse:
        blocks = ex.recent_blocks(50, before)
        return page(request, "blocks.html", live=before is None, title="Blocks", blocks=blocks)

    @app.get("/block/{number}", response_class=HTMLResponse, include_in_schema=False)
    def block_page(request: Request, number: int) -> HTMLResponse:
        return page(
            request, "block.html", title=f"Block {number}", block=ex.block(number), head=ex.reader.block_number()
        )

    @app.get("/tx/{tx_hash}", response_class=HTMLResponse, include_in_schema=False)
    def tx_page(request: Request, tx_hash: str) -> HTMLResponse:
        return page(request, "tx.html", title="Transaction", tx=ex.tx(tx_hash))

    @app.get("/address/{address}", response_class=HTMLResponse, include_in_schema=False)
    def address_page(request: Request, address: str, before: int = Query(0, ge=0)) -> HTMLResponse:
        info = ex.address(address, before)
        return page(request, "address.html", live=before == 0, title=f"Address {_short(info['address'])}", a=info)

    @app.get("/task/{task_id}", response_class=HTMLResponse, include_in_schema=False)
    def task_page(request: Request, task_id: int) -> HTMLResponse:
        t = ex.ledger.task(task_id)
        return page(request, "task.html", live=True, title=f"Task {task_id}", t=t, **_task_charts(t))

    @app.get("/cid/{cid}", response_class=HTMLResponse, include_in_schema=False)
    def cid_page(request: Request, cid: str) -> HTMLResponse:
        return page(request, "cid.html", title="CID", c=ex.cid(cid))

    @app.get("/search", include_in_schema=False)
    def search_page(request: Request, q: str = "") -> Response:
        found = ex.search(q)
        if "target" in found:
            return RedirectResponse(found["target"], status_code=303)
        return page(request, "choices.html", title="Search", q=q, choices=found["choices"])

    return app


def _schema_type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_schema_type(x) for x in schema["anyOf"])
    return str(schema.get("type", "any"))


def _task_charts(t: dict[str, Any]) -> dict[str, Markup | None]:
    """SVG charts of a task page: reputation per client over rounds, accuracy per round."""
    hist = t["reputation_history"]
    labels = ["reg."] + [f"r{h['round']}" for h in hist[1:]]
    series = [(f"#{c['index']}", [h["reputations"][c["index"]] / t["rep_scale"] for h in hist]) for c in t["clients"]]
    rep = line_chart(series, x_labels=labels, y_format="{:.2f}", title="reputation over rounds")
    acc = None
    metrics = {int(k): v for k, v in t["metrics"].items() if "accuracy" in v}
    if metrics:
        rounds = sorted(metrics)
        values = [metrics[r]["accuracy"] for r in rounds]
        lo = 0.0
        if min(values) > 0.5:  # zoom in, with 4 grid steps on whole multiples of 5 %
            step = math.ceil((1.0 - (min(values) - 0.02)) / 4 / 0.05) * 0.05
            lo = max(0.0, 1.0 - 4 * step)
        acc = Markup(
            line_chart(
                [("global model", values)], x_labels=[f"r{r}" for r in rounds], y_min=lo, title="accuracy per round"
            )
        )
    return {"rep_chart": Markup(rep), "acc_chart": acc}


def _with_download(model: dict[str, Any], state: State) -> dict[str, Any]:
    model["download"] = f"/ipfs/{model['cid']}" if state.store is not None else None
    return model


async def _head_events(request: Request, ex: Explorer, interval: float) -> AsyncIterator[str]:
    """One `head` event per new block; a comment line every ~15 s keeps proxies from timing out.

    Polls the node server-side (one `eth_blockNumber` per interval for every open page) rather
    than subscribing, because plain HTTP nodes (Hardhat, most RPC endpoints) have no push.
    """
    last: int | None = None
    idle = 0.0
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        try:
            n: int | None = await run_in_threadpool(ex.reader.block_number)
        except RpcError:
            n = None  # node gone: say so once, keep trying
        if n != last:
            yield f"event: head\ndata: {json.dumps({'block_number': n})}\n\n"
            last, idle = n, 0.0
        elif idle >= 15:
            yield ": keep-alive\n\n"
            idle = 0.0
        await asyncio.sleep(interval)
        idle += interval


_ERROR_RESPONSES = {
    "400": "bad request: a malformed parameter (the message says which and why)",
    "404": "no such block, transaction, task, round, address or content",
    "503": "the Ethereum node does not answer",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the errors the API really answers (400/404/503 with an
    `{error, status}` body) instead of FastAPI's default 422."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        error = {
            "type": "object",
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            "required": ["error", "status"],
        }
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for code, text in _ERROR_RESPONSES.items():
                    responses.setdefault(
                        code, {"description": text, "content": {"application/json": {"schema": error}}}
                    )
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


def _errors(app: FastAPI, state: State) -> None:
    """Every failure becomes a clear 4xx/5xx: JSON under /api/ (or for non-browsers), an HTML
    page otherwise; never a stack trace."""

    def respond(request: Request, status: int, message: str) -> Response:
        wants_html = not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")
        if wants_html:
            html = state.env.get_template("error.html").render(
                fragment=False, live=False, title=f"Error {status}", status=status, message=message, storage=False
            )
            return HTMLResponse(html, status_code=status)
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return respond(request, 404, str(exc))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return respond(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ())[1:]) or "request"
            got = repr(e.get("input"))
            got = got if len(got) <= 80 else got[:60] + f"... ({len(got)} characters)"  # never echo a flood back
            parts.append(f"{where}: {e.get('msg')} (got {got})")
        return respond(request, 400, "bad request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        response = respond(request, exc.status_code, message)
        response.headers.update(exc.headers or {})  # e.g. 405's Allow
        return response

    @app.exception_handler(NodeUnavailable)
    async def node_down(request: Request, exc: NodeUnavailable) -> Response:
        return respond(request, 503, str(exc))

    @app.exception_handler(ContractRevert)
    async def reverted(request: Request, exc: ContractRevert) -> Response:
        return respond(request, 404 if exc.name.removeprefix("FedLedger").startswith("Unknown") else 400, str(exc))

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> Response:
        return respond(request, 502, f"storage: {exc}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("explorer error on %s", request.url.path)  # the trace goes to the log only
        return respond(request, 500, f"internal error ({type(exc).__name__}); see the explorer's log")
