"""`honing serve` as a real process on 127.0.0.1: answers, refusals, metrics, load, OpenAPI."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import schemathesis
from _serve_helpers import start_server, train_model
from hypothesis import HealthCheck, given, settings

from honing.artifacts import load_model
from honing.data import read_source


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture(scope="module")
def server(run_dir):
    srv = start_server(run_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rows():
    raw = read_source("sklearn:iris")
    names = raw.layout["columns"]
    return [dict(zip(names, map(float, r))) for r in raw.x[::10]], raw.x[::10].astype(float)


def test_predictions_equal_load_model_predict(server, run_dir, rows):
    as_objects, as_arrays = rows
    model = load_model(run_dir / "model")
    status, body, _ = server.request("POST", "/predict", {"rows": as_objects})
    assert status == 200, body
    assert body["predictions"] == list(model.predict(as_objects))
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(as_objects), atol=1e-5)
    status, again, _ = server.request("POST", "/predict", {"rows": as_arrays.tolist()})
    assert status == 200 and again["predictions"] == body["predictions"]


def test_the_open_inference_protocol_round_trip(server, rows):
    as_objects, as_arrays = rows
    n = len(as_arrays)
    one_tensor = {"inputs": [{"name": "input", "shape": [n, 4], "datatype": "FP64",
                              "data": as_arrays.flatten().tolist()}]}
    status, body, _ = server.request("POST", "/v2/models/iris-serve/infer", one_tensor)
    assert status == 200, body
    names = list(as_objects[0])
    per_column = {"inputs": [{"name": c, "shape": [n], "datatype": "FP64", "data": as_arrays[:, i].tolist()}
                             for i, c in enumerate(names)]}
    status, by_column, _ = server.request("POST", "/v2/models/iris-serve/infer", per_column)
    expected = server.request("POST", "/predict", {"rows": as_objects})[1]["predictions"]
    assert body["outputs"][0]["data"] == by_column["outputs"][0]["data"] == expected
    assert body["outputs"][1]["shape"] == [n, 3]
    assert server.request("GET", "/v2/health/ready", auth=False)[0] == 200
    assert server.request("GET", "/v2/models/iris-serve")[1]["inputs"][0]["name"] == names[0]
    assert server.request("POST", "/v2/models/other/infer", one_tensor)[0] == 404


def test_auth_is_required_except_for_health(server):
    assert server.request("GET", "/health", auth=False)[0] == 200
    assert server.request("GET", "/ready", auth=False)[0] == 200
    for method, path in [("GET", "/metadata"), ("GET", "/metrics"), ("POST", "/predict"), ("GET", "/drift")]:
        status, body, headers = server.request(method, path, {"rows": [[1, 2, 3, 4]]} if method == "POST" else None,
                                               auth=False)
        assert status == 401 and headers["www-authenticate"] == "Bearer", (path, body)
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert server.request("GET", "/metadata", auth=False, headers=wrong)[0] == 401


def test_a_large_body_is_refused_before_it_is_read(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall((f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n").encode())
        start = time.time()
        reply = ""
        while "over the limit" not in reply and time.time() - start < 5:  # no byte of the body was sent
            chunk = s.recv(4096).decode()
            if not chunk:
                break
            reply += chunk
    assert reply.startswith("HTTP/1.1 413") and "over the limit" in reply and time.time() - start < 5
    # a chunked body (no Content-Length) is counted as it arrives
    big = b'{"rows": [' + b"[1,2,3,4]," * 200_000 + b"[1,2,3,4]]}"
    status, body, _ = server.request("POST", "/predict", raw=big, headers={"Content-Type": "application/json"},
                                     chunked=True)
    assert status == 413
    assert server.request("POST", "/predict", raw=b'{"rows": [[1,2,3,4]]}', chunked=True,
                          headers={"Content-Type": "application/json"})[0] == 200


def test_wrong_content_type_and_rows_the_model_cannot_take(server, rows):
    status, body, _ = server.request("POST", "/predict", raw=b"rows", headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in body["detail"]
    row = dict(rows[0][0])
    row.pop("petal width (cm)")
    status, body, _ = server.request("POST", "/predict", {"rows": [row]})
    assert status == 422 and "missing column(s) 'petal width (cm)'" in body["detail"]
    status, body, _ = server.request("POST", "/predict", {"rows": [[1, 2, 3]]})
    assert status == 422 and "got 3 values; allowed: 4 values" in body["detail"]
    status, body, _ = server.request("POST", "/predict", {"rows": []})
    assert status == 422  # schema: at least one row
    status, body, _ = server.request("POST", "/predict", {"rows": [[1, 2, 3, 4]] * 1025})
    assert status == 422 and "at most 1024 per request" in body["detail"]


def test_metadata_and_prometheus_metrics(server, rows):
    card = server.request("GET", "/metadata")[1]
    assert card["task"] == "classification" and card["classes"] == ["setosa", "versicolor", "virginica"]
    assert card["test_metrics"]["accuracy"] > 0.8 and card["drift_reference"] is True
    server.request("POST", "/predict", {"rows": rows[0]})
    status, text, headers = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'honing_requests_total{code="200",route="/predict"}' in text
    assert "honing_request_seconds_bucket" in text and "honing_batch_rows_bucket" in text
    assert 'honing_request_errors_total{code="401"' in text or "honing_request_errors" in text


def test_drift_over_the_logged_window(server, run_dir):
    raw = read_source("sklearn:iris").x.astype(float)
    server.request("POST", "/predict", {"rows": raw[::3].tolist()})
    report = server.request("GET", "/drift")[1]
    assert report["rows"] >= 50 and {t["name"] for t in report["tests"]} >= {"sepal length (cm)", "outputs"}
    shifted = raw[::3].copy()
    shifted[:, 0] += 3.0  # sepal length far outside what the model saw
    for _ in range(3):
        server.request("POST", "/predict", {"rows": shifted.tolist()})
    report = server.request("GET", "/drift")[1]
    assert report["drifted"] and any(t["name"] == "sepal length (cm)" and t["drifted"] for t in report["tests"])
    metrics = server.request("GET", "/metrics")[1]
    assert "honing_drift_detected 1.0" in metrics
    log = run_dir / "serving" / "inputs.jsonl"
    deadline = time.time() + 10  # a writer thread appends the queued rows every half second
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) > 100):
        time.sleep(0.2)
    lines = log.read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) > 100 and len(first["row"]) == 4 and first["prediction"] in ("setosa", "versicolor", "virginica")


def test_the_logged_rows_become_a_file_to_label_that_refit_reads(server, run_dir, tmp_path):
    import csv as csv_module

    from honing.serve import RefitConfig, refit

    server.request("POST", "/predict", {"rows": read_source("sklearn:iris").x[::2].astype(float).tolist()})
    time.sleep(1.0)  # the writer flushes every half second
    logged = sum(len(p.read_text().splitlines()) for p in (run_dir / "serving").glob("inputs*.jsonl*"))
    out = tmp_path / "to-label.csv"
    done = subprocess.run([sys.executable, "-m", "honing.cli", "log", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {logged} logged rows" in done.stdout and "review and correct them" in done.stdout
    assert f"--data csv:{out} --target label" in done.stdout
    table = list(csv_module.reader(out.open()))
    assert table[0] == [*load_model(run_dir / "model").columns, "label"] and len(table) == logged + 1
    assert {r[-1] for r in table[1:]} <= {"setosa", "versicolor", "virginica"}
    result = refit(run_dir, f"csv:{out}", tmp_path / "r", RefitConfig(epochs=2, promote=False), target="label")
    assert result["scores"]["new_data"]["rows"] > 0
    bad = subprocess.run([sys.executable, "-m", "honing.cli", "log", str(run_dir), "--out", str(tmp_path / "x.npz")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "allowed: a .csv path" in bad.stderr


def test_a_bounded_load_of_2000_requests_at_concurrency_16_has_no_errors(server, rows):
    payload = {"rows": rows[0][:2]}

    def one(_):
        return server.request("POST", "/predict", payload)[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(2000)))
    assert codes.count(200) == 2000
    metrics = server.request("GET", "/metrics")[1]
    # concurrent requests were gathered: some forward passes ran more than one request's rows
    line = next(x for x in metrics.splitlines() if x.startswith('honing_batch_rows_bucket{le="2.0"}'))
    total = next(x for x in metrics.splitlines() if x.startswith("honing_batch_rows_count"))
    assert float(line.split()[-1]) < float(total.split()[-1])


def test_no_generated_request_gets_a_server_error(server):
    """Schemathesis generates requests for every operation of /openapi.json (valid and not);
    none may get a 5xx."""
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=server.auth)
    failures, calls = [], []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=server.auth)
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.body, response.text[:300]))

        check()
    assert not failures, failures[:3]
    assert len(calls) > 50 and {200, 422} <= set(calls)


def test_the_token_file_is_private_and_printed_once(run_dir, tmp_path):
    state = tmp_path / "state"
    first = start_server(run_dir / "model", "--state-dir", str(state))
    first.stop()
    out = first.process.stdout.read()
    token = (state / "token").read_text().strip()
    assert stat.S_IMODE((state / "token").stat().st_mode) == 0o600 and token in out
    second = start_server(run_dir / "model", "--state-dir", str(state))
    second.stop()
    assert token not in second.process.stdout.read()


def test_no_auth_only_on_loopback(run_dir):
    done = subprocess.run([sys.executable, "-m", "honing.cli", "serve", str(run_dir), "--no-auth", "--host",
                           "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "binds only a loopback address" in done.stderr
    srv = start_server(run_dir, "--no-auth")
    try:
        assert srv.request("GET", "/metadata")[0] == 200
    finally:
        srv.stop()


def test_two_workers_share_one_metrics_page_and_keep_a_log_each(run_dir, rows, tmp_path):
    state = tmp_path / "state"
    server = start_server(run_dir, "--workers", "2", "--state-dir", str(state))
    try:
        one, sent = rows[0][:3], 0
        for _ in range(20):  # until both workers have answered (the kernel spreads the connections)
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: server.request("POST", "/predict", {"rows": one})[0], range(100)))
            assert codes == [200] * 100
            sent += 300
            time.sleep(1.0)  # the writers flush every half second
            if len(list(state.glob("inputs*.jsonl"))) == 2:
                break
        assert sorted(p.name for p in state.glob("inputs*.jsonl")) == ["inputs-1.jsonl", "inputs.jsonl"]
        assert sum(len(p.read_text().splitlines()) for p in state.glob("inputs*.jsonl")) == sent
        # every worker's counts, summed, whichever worker answers /metrics
        for _ in range(4):
            text = server.request("GET", "/metrics")[1]
            assert next(float(line.split()[-1]) for line in text.splitlines()
                        if line.startswith("honing_rows_total")) == sent
    finally:
        server.stop()
