"""`textgen serve` as a real process on a free localhost port: driven by the official `openai`
client, and by headless Chromium through the playground page; stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from textgen.generate.sampling import SamplingSettings, load_sampler

KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run, tiny_classifier_run, tmp_path_factory):
    """`textgen serve` on the tiny generator and the tiny classifier, with an API key."""
    root = tmp_path_factory.mktemp("served")
    key_file = root / "key.txt"
    key_file.write_text(KEY + "\n")
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "textgen", "serve", str(tiny_run.path),
         str(tiny_classifier_run.path),
         "--port", str(port), "--api-key-file", str(key_file)],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"the server did not start:\n{(root / 'server.log').read_text()}")
            time.sleep(0.3)
    yield {"url": url, "proc": proc, "log": root / "server.log", "tiny_run": tiny_run}
    if proc.poll() is None:
        proc.kill()
    log.close()


def test_the_openai_client_works_unchanged(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY)
    model = server["tiny_run"].path.name
    assert {m.id for m in client.models.list()} == {model, "moods"}
    assert client.models.retrieve("moods").id == "moods"
    sampler = load_sampler(server["tiny_run"])
    result = client.completions.create(model=model, prompt="To be", max_tokens=40, n=2,
                                       stop=["e"], seed=7, temperature=0.8)
    assert [c.index for c in result.choices] == [0, 1]
    for choice in result.choices:
        alone = sampler.sample_with_reason("To be", SamplingSettings(
            temperature=0.8, length=40, rng_seed=7 + choice.index, stop=("e",)))
        expected = alone.text[len("To be"):]
        assert choice.text == (expected[:-1] if alone.finish_reason == "stop" else expected)
        assert choice.finish_reason == alone.finish_reason
    pieces = list(client.completions.create(model=model, prompt="To be", max_tokens=40,
                                            stop=["e"], seed=7, temperature=0.8, stream=True))
    assert len(pieces) > 1
    assert "".join(p.choices[0].text for p in pieces) == result.choices[0].text
    batch = client.completions.create(model=model, prompt=["And by", "To be"], max_tokens=40,
                                      n=2, stop=["e"], seed=7, temperature=0.8)
    assert [c.text for c in batch.choices[2:]] == [c.text for c in result.choices]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong").models.list()
    with pytest.raises(openai.BadRequestError) as info:  # a 400 naming the field, as OpenAI
        client.completions.create(model=model, prompt="To", max_tokens=10, top_p=2.0)
    assert info.value.status_code == 400 and "'top_p' must be in (0, 1]" in str(info.value)


def test_the_openai_client_chats_unchanged(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY)
    model = server["tiny_run"].path.name
    sampler = load_sampler(server["tiny_run"])
    # The tiny model's text has no "U": the user is named, as a play's speakers are.
    messages = [{"role": "system", "content": "To be"},
                {"role": "user", "name": "Tom", "content": "Whether"}]
    prompt = "To be\n\nTom:\nWhether\n\nAssistant:\n"  # serve/chat.py's layout
    result = client.chat.completions.create(model=model, messages=messages, n=2, seed=7,
                                            max_completion_tokens=40, stop=["e"],
                                            temperature=0.8)
    assert [c.index for c in result.choices] == [0, 1]
    for choice in result.choices:
        alone = sampler.sample_with_reason(prompt, SamplingSettings(
            temperature=0.8, length=40, rng_seed=7 + choice.index, stop=("e", "\n\n")))
        reply = alone.text[len(prompt):]
        if alone.finish_reason == "stop":
            reply = reply.removesuffix("\n\n").removesuffix("e")
        assert choice.message.role == "assistant" and choice.message.content == reply
        assert choice.finish_reason == alone.finish_reason
    assert result.usage.prompt_tokens == len(prompt)
    chunks = list(client.chat.completions.create(
        model=model, messages=messages, seed=7, max_completion_tokens=40, stop=["e"],
        temperature=0.8, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        result.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == \
        result.choices[0].finish_reason
    assert chunks[-1].usage.prompt_tokens == len(prompt)
    with pytest.raises(openai.BadRequestError) as info:  # a classifier cannot chat
        client.chat.completions.create(model="moods", messages=messages)
    assert "'moods' is a classify model" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "tool",
                                                               "content": "x"}])
    assert info.value.body["param"] == "messages[0].role"


# Whether an input's placeholder fits inside it (the text's width against the content box).
PLACEHOLDER_FITS = """
const input = arguments[0], style = getComputedStyle(input);
const context = document.createElement("canvas").getContext("2d");
context.font = `${style.fontSize} ${style.fontFamily}`;
const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
return context.measureText(input.placeholder).width <= room;
"""


def _chromium_driver():
    pytest.importorskip("selenium")
    from selenium import webdriver

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("Chromium and chromedriver are not installed (Debian: chromium, "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=420,900"):  # a phone-sized window
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver_path)
    return webdriver.Chrome(options=options, service=service)


def test_the_playground_page_generates_and_classifies(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = _chromium_driver()
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(server["url"] + "/")
        driver.execute_script("localStorage.setItem('textgen-key', 'kept-by-an-old-page')")
        driver.refresh()  # the page removes a key an earlier version kept on disk
        key = driver.find_element(By.ID, "key")
        key.send_keys(KEY)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        # The key lasts the tab's session (reloads included), never written to disk.
        assert driver.execute_script("return sessionStorage.getItem('textgen-key')") == KEY
        assert driver.execute_script("return localStorage.length") == 0
        model = Select(driver.find_element(By.ID, "model"))
        model.select_by_value(server["tiny_run"].path.name)
        # The fields start from the server's defaults (/v1/models), within its limits.
        fields = {name: driver.find_element(By.ID, name) for name in
                  ("temperature", "length", "top_p", "n")}
        assert {name: f.get_attribute("value") for name, f in fields.items()} == \
            {"temperature": "0.8", "length": "500", "top_p": "", "n": "1"}
        assert fields["length"].get_attribute("max") == "5000"
        for field in driver.find_elements(By.CSS_SELECTOR, "input[placeholder]"):
            assert driver.execute_script(PLACEHOLDER_FITS, field), \
                f"the placeholder of #{field.get_attribute('id')} is cut off"
        driver.find_element(By.ID, "skip_unknown").click()  # the snowman is dropped
        for field, value in {"seed": "To ☃be", "length": "300", "stop-text": "th", "n": "2",
                             "rng_seed": "7"}.items():
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".reason[data-reason]")) == 2)
        # Each sample is the one the API gives for these fields, and says why it ended.
        sampler = load_sampler(server["tiny_run"])
        endings = {"stop": "ended: wrote the stop text",
                   "length": "ended: reached the length (300 characters)"}
        for i, box in enumerate(driver.find_elements(By.CSS_SELECTOR, ".sample")):
            expected = sampler.sample_with_reason("To be", SamplingSettings(
                temperature=0.8, length=300, rng_seed=7 + i, stop=("th",)))
            text = box.find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent")
            assert text == expected.text
            assert box.find_element(By.CSS_SELECTOR, ".reason").text == \
                endings[expected.finish_reason]
        wait.until(ready.element_to_be_clickable((By.ID, "generate")))
        screenshot = tmp_path / "playground.png"
        driver.save_screenshot(str(screenshot))
        saved = os.environ.get("TEXTGEN_SCREENSHOT_DIR")
        if saved:
            shutil.copy(screenshot, Path(saved) / "playground-generate.png")

        driver.execute_script("document.getElementById('generate').click();"
                              "document.getElementById('stop').click();")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".reason[data-reason=stopped]"))
        assert driver.find_element(By.CSS_SELECTOR, ".reason").text == \
            "stopped: you pressed Stop"

        # 2**64 + 7: the seed goes out digit for digit (a JavaScript number rounded it to
        # 2**64) and the server takes it modulo 2**64, as the CLI does: the sample of seed 7.
        for field, value in {"n": "1", "rng_seed": str(2**64 + 7)}.items():
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".reason[data-reason]"))
        text = driver.find_element(By.CSS_SELECTOR, ".sample .text").get_attribute("textContent")
        assert text == sampler.sample_with_reason("To be", SamplingSettings(
            temperature=0.8, length=300, rng_seed=7, stop=("th",))).text
        wait.until(ready.element_to_be_clickable((By.ID, "generate")))

        # An emptied number field is refused in the page, not sent as 0 (greedy sampling).
        driver.find_element(By.ID, "temperature").clear()
        driver.find_element(By.ID, "generate").click()
        assert driver.find_element(By.ID, "error").text == "Temperature needs a number"
        assert driver.find_elements(By.CSS_SELECTOR, ".sample") == []
        # The field an error is about is marked and focused: the page's check, the server's.
        assert driver.find_element(By.ID, "temperature").get_attribute("aria-invalid") == "true"
        assert driver.switch_to.active_element.get_attribute("id") == "temperature"
        driver.find_element(By.ID, "temperature").send_keys("0.8")
        driver.find_element(By.ID, "n").clear()
        driver.find_element(By.ID, "n").send_keys("100", Keys.ENTER)  # Enter generates
        wait.until(lambda d: "'n' must be <= 16" in d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "n").get_attribute("aria-invalid") == "true"
        assert driver.find_element(By.ID, "temperature").get_attribute("aria-invalid") is None

        model.select_by_value("moods")
        driver.find_element(By.ID, "texts").send_keys("a wonderful brilliant film\n"
                                                      "an awful boring mess")
        driver.find_element(By.ID, "texts").send_keys(Keys.CONTROL, Keys.ENTER)  # = Classify
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 2)
        labels = [r.find_element(By.CSS_SELECTOR, ".bar .label").text
                  for r in driver.find_elements(By.CSS_SELECTOR, ".result")]
        assert len(labels) == 2
        if saved:
            driver.save_screenshot(str(Path(saved) / "playground-classify.png"))
        assert driver.find_element(By.ID, "error").text == ""
        key = driver.find_element(By.ID, "key")
        key.clear()  # the server's errors are shown readably
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait.until(lambda d: "missing or wrong API key" in d.find_element(By.ID, "error").text)
        # in the page's words: the API's "send 'Authorization: Bearer KEY'" is a client's
        assert driver.find_element(By.ID, "error").text == (
            "missing or wrong API key: type the server's key in the API key box (401)")
        assert Select(driver.find_element(By.ID, "model")).first_selected_option.get_attribute(
            "value") == "moods"
        driver.find_element(By.ID, "classify").click()  # a refused request clears the answer
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".result"))
        assert "missing or wrong API key" in driver.find_element(By.ID, "error").text
        # a key no browser can send (a curly quote pasted) was said as the server being down
        key.send_keys("abc\u201cdef")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait.until(lambda d: "printable ASCII" in d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text.startswith(
            "the API key may hold only printable ASCII without spaces")
        assert key.get_attribute("aria-invalid") == "true"
        driver.find_element(By.ID, "classify").click()
        assert "cannot be reached" not in driver.find_element(By.ID, "error").text
        # a server gone is said so by Generate as by the rest of the page ("the connection
        # failed" it said): a browser's fetch rejects when nothing answers
        key.clear()
        key.send_keys(KEY)
        driver.execute_script("window.fetch = () => Promise.reject(new TypeError('Failed to "
                              "fetch'))")
        model.select_by_value(server["tiny_run"].path.name)
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == (
            "the server cannot be reached (is textgen serve still running?): Failed to fetch")
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                and "Failed to load resource" not in e["message"]] == []
    finally:
        driver.quit()
    assert screenshot.stat().st_size > 10_000


def test_sigterm_ends_open_streams_and_stops_the_server(server):
    """A stream still running when SIGTERM comes finishes within the grace period (3 s) or is
    ended as "cancelled" just before it, a complete response either way; the server exits as
    servers do on SIGTERM (status -15, 143 in a shell), without a traceback."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", int(server["url"].rsplit(":", 1)[1]),
                                            timeout=60)
    connection.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert connection.getresponse().read()
    connection.request("POST", "/v1/generate", json.dumps(
        {"seed": "To", "length": 5000, "stream": True, "temperature": 1.0}),
        {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"event: ")  # generating
    proc = server["proc"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = response.read()  # returns once the server has ended the stream
    assert time.monotonic() - started < 20
    assert proc.wait(timeout=30) == -signal.SIGTERM
    # A complete response: the last event says why the stream ended.
    last = rest.decode().strip().split("\n\n")[-1]
    assert last.startswith("event: end") and ("length" in last or "cancelled" in last), last
    text = server["log"].read_text()
    assert "Traceback" not in text and KEY not in text
    assert "Ctrl-C again" not in text  # SIGTERM: no key to press again
    assert "GET /v1/models 200" in text and "POST /v1/generate 200" in text


def test_a_second_ctrl_c_stops_at_once_without_a_traceback(tiny_run, tmp_path):
    """The first Ctrl-C says the samples being written get the grace period; a second one
    stops the server at once, and uvicorn's cancelled requests print no traceback."""
    import http.client

    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        # a length no machine writes within the test's second (5,000 took about 1 s here)
        proc = subprocess.Popen([sys.executable, "-m", "textgen", "serve", str(tiny_run.path),
                                 "--port", str(port), "--max-length", "1000000"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    connection.request("POST", "/v1/generate", json.dumps(
                        {"seed": "To", "length": 1000000, "n": 4, "stream": True}),
                        {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, \
                        log_path.read_text()
                    time.sleep(0.3)
            assert response.status == 200 and response.readline().startswith(b"event: ")
            # a request answered in one piece, still being written (uvicorn answered it with
            # a plain-text 500)
            waiting = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            waiting.request("POST", "/v1/generate",
                            json.dumps({"seed": "To", "length": 1000000, "n": 16}),
                            {"Content-Type": "application/json"})
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            answer = waiting.getresponse()
            assert (answer.status, answer.getheader("Content-Type")) == (503, "application/json")
            assert json.loads(answer.read())["error"]["code"] == "server_shutting_down"
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    # 4 streamed, and the 16 of the request in one piece where it was read in time
    assert re.search(r"stopping: (4|20) sample\(s\) being written get up to 2 s to end; "
                     r"Ctrl-C again stops at once", text), text
    assert "Traceback" not in text and "CancelledError" not in text, text


def test_ctrl_c_exits_130_even_where_sigint_was_inherited_as_ignored(tiny_run, tmp_path):
    """A background job of a script inherits SIGINT as ignored: uvicorn stopped on it all
    the same, then raised it again as ignored, and the server exited 0 (the README: 130)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "textgen", "serve", str(tiny_run.path),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        while True:  # answering: uvicorn handles the signals from here on
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_server_started_with_stdout_closed_serves(tiny_run):
    """`textgen serve RUN >&-` (a daemon's way): uvicorn's log formatter asked the closed
    stdout's stand-in whether it was a terminal, a bug report, exit 1."""
    port = free_port()
    proc = subprocess.Popen(["bash", "-c", f'exec "{sys.executable}" -m textgen serve '
                             f'"{tiny_run.path}" --port {port} >&-'],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
                assert json.loads(answer.read())["status"] == "ok"
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert "Traceback" not in proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
