"""The explorer's JSON read API on a real anvil, after a 2-round task driven through the bindings."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.explorer.conftest import BAD, Server


def test_head_reports_chain_otterscan_and_deployment(client, run, deployment):
    head = client.get("/api/head").json()
    assert head["chain_id"] == 31337 and head["ots_api_level"] == 8
    assert head["contract"] == deployment.fl.address and head["tasks"] >= 1
    assert head["block_number"] == deployment.fl.w3.eth.block_number


def test_task_rounds_scores_votes_and_payouts(client, run, deployment):
    t = run.task.task_id
    task = client.get(f"/api/tasks/{t}").json()
    assert task["status"] == "finished" and task["current_round"] == 2 and len(task["clients"]) == 4
    assert [r["status"] for r in task["rounds"]] == ["finalised", "finalised"]
    assert int(task["paid_wei"]) + int(task["escrow_wei"]) == int(task["escrow_total_wei"]) == 2 * 10**18
    kinds = {p["kind"] for p in task["payouts"]}
    assert kinds == {"client reward", "winner bonus", "committee reward"}
    assert {p["round"] for p in task["payouts"]} == {1, 2}

    r1 = task["rounds"][0]
    assert [p["phase"] for p in r1["phases"]] == ["train", "submit", "commit", "reveal", "aggregate", "finalised"]
    assert len(r1["submissions"]) == 4 and len(r1["commits"]) == 4 and len(r1["committee"]) == 3
    for s in r1["submissions"]:  # every CID downloads through the storage and matches its digest
        data = client.get(f"/ipfs/{s['weights_cid']}").content
        assert "0x" + hashlib.sha256(data).hexdigest() == s["digest"]
        assert s["accepted"] is (s["index"] != BAD)
    scores = r1["scores"]
    assert scores["validators"] == scores["targets"] == [0, 1, 2, 3]
    assert all(scores["matrix"][i][i] is None for i in range(4))  # own model: ignored
    assert scores["quality"][BAD] < 3000 < min(q for j, q in enumerate(scores["quality"]) if j != BAD)
    assert r1["result"]["rejected"] == [BAD] and r1["result"]["accepted"] == [0, 1, 2]
    winner = r1["result"]["winner"]
    assert winner == max(range(4), key=lambda j: scores["quality"][j])
    (proposal,) = r1["proposals"]
    assert proposal["final"] and proposal["votes"] == 3 and proposal["winner"] == winner
    assert [v["votes"] for v in r1["votes"]] == [1, 2, 3]
    assert r1["accuracy"] == pytest.approx(0.912)

    history = task["reputation_history"]
    assert [h["round"] for h in history] == [0, 1, 2]
    assert history[2]["reputations"] == task["reputations_now"]
    assert history[1]["reputations"][BAD] < history[1]["reputations"][winner]
    assert task["metrics"]["2"]["accuracy"] == pytest.approx(0.934)

    assert client.get(f"/api/tasks/{t}/rounds").json() == task["rounds"]
    assert client.get(f"/api/tasks/{t}/rounds/2").json()["round"] == 2
    assert run.task.task_id in [x["id"] for x in client.get("/api/tasks").json()]


def test_latest_model_and_bcs_fl_aliases(client, run, deployment):
    t = run.task.task_id
    model = client.get(f"/api/tasks/{t}/model").json()
    r2 = client.get(f"/api/tasks/{t}/rounds/2").json()
    assert model["round"] == 2 and model["cid"] == r2["result"]["global_cid"] == deployment.fl.global_model(t)[0]
    data = client.get(model["download"]).content
    assert "0x" + hashlib.sha256(data).hexdigest() == model["digest"]
    assert client.get(f"/api/getLatestModel?task={t}").json()["cid"] == model["cid"]
    chain = client.get("/api/getBlockchain?limit=5").json()
    assert len(chain["blocks"]) == 5 and chain["length"] == chain["head"]["block_number"] + 1
    assert all("transactions" in b for b in chain["blocks"])
    spec = client.get("/api/openapi.json").json()
    for path in ("/api/head", "/api/tasks/{task_id}", "/api/getBlockchain", "/api/getLatestModel", "/api/stream"):
        assert path in spec["paths"]
    docs = client.get("/api/docs").text  # rendered on the server: no Swagger UI from a CDN
    assert "/api/tasks/{task_id}/model" in docs and "cdn" not in docs.lower()


def _tx_checks(api, run) -> dict:
    sub = run.task.fl.submissions(run.task.task_id, 1)[0]
    tx = api.get(f"/api/tx/{sub.tx_hash}").json()
    assert tx["status"] == "success" and tx["method"] == "submitModel" and tx["gas_used"] > 21000
    assert tx["call"]["function"] == "submitModel" and tx["call"]["args"]["weightsCID"] == sub.weights_cid
    assert "ModelSubmitted" in [e["event"] for e in tx["events"]]
    failed = api.get(f"/api/tx/{run.failed_tx}").json()
    assert failed["status"] == "failed" and "UnknownRevert" not in failed["revert"]
    assert failed["revert"].startswith("reverted with ")
    block = api.get(f"/api/blocks/{tx['block']}").json()
    assert sub.tx_hash in [x["hash"] for x in block["transactions"]]
    assert [x["method"] for x in block["transactions"] if x["hash"] == sub.tx_hash] == ["submitModel"]
    addr = api.get(f"/api/address/{sub.client}").json()
    assert "data owner" in addr["roles"] and run.task.task_id in addr["data_owner_of"]
    assert sub.tx_hash in [x["hash"] for x in addr["transactions"]] or addr["more"]
    return {"tx": tx, "failed": failed, "block": block, "addr": addr}


def test_transactions_blocks_and_addresses(client, run, deployment):
    _tx_checks(client, run)
    requester = client.get(f"/api/address/{deployment.fl.sender}").json()
    assert "requester" in requester["roles"] and run.task.task_id in requester["requester_of"]
    miner = client.get(f"/api/address/{run.task.miners[0].sender}").json()
    assert "miner" in miner["roles"] and miner["miner_active"]
    contract = client.get(f"/api/address/{deployment.fl.address}").json()
    assert contract["is_contract"] and "FedLedger contract" in contract["roles"]
    blocks = client.get("/api/blocks?limit=3").json()
    assert [b["number"] for b in blocks] == sorted((b["number"] for b in blocks), reverse=True)


def test_plain_eth_fallback_gives_the_same_answers(make_app, run, client):
    """Forced without ots_ (as on Hardhat): same blocks, transactions, revert reason, history."""
    with Server(make_app(use_ots=False)) as srv, httpx.Client(base_url=srv.url, timeout=30) as plain:
        assert plain.get("/api/head").json()["ots_api_level"] == 0
        a, b = _tx_checks(plain, run), _tx_checks(client, run)
        assert a["failed"]["revert"] == b["failed"]["revert"]
        assert a["block"] == b["block"]
        assert a["tx"] == b["tx"]
        assert [x["hash"] for x in a["addr"]["transactions"]] == [x["hash"] for x in b["addr"]["transactions"]]


def test_search_resolves_every_kind_of_query(client, run, deployment):
    t = run.task.task_id
    sub = deployment.fl.submissions(t, 1)[0]
    assert client.get(f"/api/search?q=task {t}").json() == {"target": f"/task/{t}"}
    assert client.get(f"/api/search?q=%23{t}").json() == {"target": f"/task/{t}"}
    both = client.get(f"/api/search?q={t}").json()  # a small number is both a block and a task
    assert {c["url"] for c in both["choices"]} == {f"/block/{t}", f"/task/{t}"}
    assert client.get(f"/api/search?q={sub.tx_hash}").json() == {"target": f"/tx/{sub.tx_hash}"}
    assert client.get(f"/api/search?q={sub.client.lower()}").json() == {"target": f"/address/{sub.client}"}
    assert client.get(f"/api/search?q={sub.weights_cid}").json() == {"target": f"/cid/{sub.weights_cid}"}
    block_hash = deployment.fl.w3.eth.get_block(sub.block_number)["hash"]
    assert client.get(f"/api/search?q=0x{bytes(block_hash).hex()}").json() == {"target": f"/block/{sub.block_number}"}
    uses = client.get(f"/api/cid/{sub.weights_cid}").json()
    assert uses["in_storage"] and uses["uses"][0]["what"] == "client weights" and uses["uses"][0]["task"] == t
    r = client.get(f"/search?q={sub.tx_hash}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/tx/{sub.tx_hash}"


BAD_REQUESTS = [
    ("/api/tx/0x" + "ab" * 32, 404, "no transaction"),
    ("/api/tx/0x1234", 400, "not a transaction hash"),
    ("/api/address/0x1234", 400, "not an address"),
    ("/api/address/hello", 400, "not an address"),
    ("/api/tasks/999", 404, "no task 999"),
    ("/api/tasks/0", 404, "no task 0"),
    ("/api/tasks/abc", 400, "task_id"),
    ("/api/tasks/1/rounds/9", 404, "no round 9"),
    ("/api/blocks/99999999", 404, "no block 99999999"),
    (f"/api/blocks/{2**64}", 404, f"no block {2**64}"),
    (f"/block/{2**70}", 404, f"no block {2**70}"),
    ("/api/blocks/-1", 400, "block numbers start at 0"),
    ("/api/blocks?limit=0", 400, "limit"),
    ("/api/search?q=zzz", 400, "not a block number"),
    ("/api/search?q=123456789", 404, "no block or task"),
    ("/api/cid/notacid", 400, "not a CID"),
    ("/ipfs/notacid", 400, "not a CID"),
    ("/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyfu", 404, "not in the configured storage"),
    ("/api/nothing", 404, "no such page"),
]


@pytest.mark.parametrize(("url", "status", "text"), BAD_REQUESTS)
def test_bad_input_gives_a_clear_json_error(client, url, status, text):
    r = client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and text in body["error"]
    assert "Traceback" not in r.text


def test_errors_are_bounded_documented_and_say_what_is_allowed(client):
    flood = "x" * 50_000  # httpx refuses URLs of 64 kB and more
    r = client.get(f"/api/blocks?limit={flood}")
    assert r.status_code == 400 and len(r.text) < 1_000 and "50002 characters" in r.text
    r = client.post("/api/head")
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    spec = client.get("/api/openapi.json").json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert "422" not in op["responses"], path
            assert {"200", "400", "404", "503"} <= set(op["responses"]), path


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/tx/0x" + "cd" * 32, 404),
        ("/address/0xnope", 400),
        ("/task/999", 404),
        ("/block/abc", 400),
        ("/nowhere", 404),
        ("/search?q=%3F%3F", 400),
    ],
)
def test_bad_input_gives_a_clear_html_error_page(client, url, status):
    r = client.get(url, headers={"Accept": "text/html"})
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert f"Error {status}" in r.text and "Traceback" not in r.text and "</html>" in r.text


def test_pages_render(client, run, deployment):
    t = run.task.task_id
    sub = deployment.fl.submissions(t, 1)[0]
    for url in [
        "/",
        "/tasks",
        "/blocks",
        f"/block/{sub.block_number}",
        f"/tx/{sub.tx_hash}",
        f"/tx/{run.failed_tx}",
        f"/address/{sub.client}",
        f"/task/{t}",
        f"/cid/{sub.weights_cid}",
    ]:
        r = client.get(url)
        assert r.status_code == 200 and "</html>" in r.text, url
    fragment = client.get(f"/task/{t}", headers={"X-Fragment": "1"}).text
    assert "<html" not in fragment and 'id="heatmap-1"' in fragment


def test_server_sent_events_announce_new_blocks(server, deployment):
    w3 = deployment.fl.w3
    with httpx.stream("GET", server.url + "/api/stream", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        heads = []
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data:"):
                heads.append(json.loads(line[5:])["block_number"])
                if len(heads) == 1:
                    w3.provider.make_request("evm_mine", [])
                else:
                    break
    assert heads[1] == heads[0] + 1 or heads[1] > heads[0]


def test_cli_reports_an_unreachable_node(tmp_path, cli):
    code, out = cli("explorer", "--rpc", "http://127.0.0.1:9", "--manifest", tmp_path / "none.json")
    assert code == 2 and "no Ethereum node answers" in out and "Traceback" not in out


def test_metrics_hook_reads_the_simulation_report(tmp_path):
    from fedledger.explorer.ledger import load_metrics

    report = {
        "task_id": 3,
        "rounds": [
            {"round": 1, "status": "finalised", "accuracy": 0.9, "asr": None, "winner": 2},
            {"round": 2, "status": "finalised", "accuracy": 0.95, "asr": 0.1},
        ],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert load_metrics(tmp_path, 3) == {1: {"accuracy": 0.9, "winner": 2.0}, 2: {"accuracy": 0.95, "asr": 0.1}}
    assert load_metrics(tmp_path, 4) == {}  # another task's report
    (tmp_path / "task-4.json").write_text(json.dumps([{"round": 1, "accuracy": 0.5}]))
    assert load_metrics(tmp_path, 4) == {1: {"accuracy": 0.5}}
    (tmp_path / "all.json").write_text(json.dumps({"7": {"rounds": [{"round": 2, "accuracy": 0.7}]}}))
    assert load_metrics(tmp_path / "all.json", 7) == {2: {"accuracy": 0.7}}
    (tmp_path / "broken.json").write_text("{half")
    assert load_metrics(tmp_path / "broken.json", 7) == {} and load_metrics(None, 1) == {}


def test_a_failed_round_is_shown_as_failed(client, deployment):
    from fedledger.core.chain import Phase
    from tests.chain.helpers import increase_time
    from tests.explorer.conftest import new_task, play_round

    task = new_task(deployment)
    t = task.task_id
    play_round(deployment, task, 1, upto="reveal")  # nobody on the committee votes
    increase_time(deployment.fl.w3, 3600)
    deployment.fl.advance(t)
    assert deployment.fl.round_info(t, 1).phase == Phase.FAILED
    r1 = client.get(f"/api/tasks/{t}/rounds/1").json()
    assert r1["status"] == "failed" and r1["result"]["at_phase"] == "aggregate" and r1["result"]["winner"] is None
    assert all(s["accepted"] is None for s in r1["submissions"])
    page = client.get(f"/task/{t}").text
    assert 'data-status="failed"' in page and "previous global model is kept" in page
