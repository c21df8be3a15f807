"""Bad input is a build error, never a crash, a hang or markup in the page (issue 13).

Quiz questions with more options than letters, names that are markup, slices of files
outside the engine or not in UTF-8, checks that never end or raise KeyboardInterrupt:
each is an error naming the page, the directive and what is allowed, and the rest of
the book still builds. The HTML the extension writes by hand escapes every attribute.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nanobook.executed import run_code
from nanobook.time_limit import CheckTimeout, time_limit

from tests.ext.conftest import ROOT, assert_snapshot, fragment, messages_of, page, warnings_of

ALLOWED_NAME = ("a name may hold only lowercase letters, digits and '-', starting with a letter "
                "or a digit")


def _prepare(srcdir: Path, outside: Path) -> None:
    """What git cannot hold well: a link out of the book and a Latin-1 engine file."""
    outside.write_text("SECRET = 1\n")
    (srcdir / "toyengine" / "secret.py").symlink_to(outside)
    (srcdir / "toyengine" / "legacy.py").write_bytes("# caf\u00e9\nx = 1\n".encode("latin-1"))


def _by_page(app) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in messages_of(app):
        doc = re.match(r"\S*/([\w-]+)\.md:\d+: ", message)
        assert doc, message
        found.setdefault(doc.group(1), []).append(message)
    return found


@pytest.mark.sphinx("html", testroot="bad-input", freshenv=True)
def test_bad_input_is_an_error_that_names_what_is_allowed(app, tmp_path):
    srcdir = Path(app.srcdir)
    _prepare(srcdir, tmp_path / "secret.py")
    start = time.monotonic()
    app.build()
    assert time.monotonic() - start < 30  # the endless check was stopped after 1 s
    root = srcdir.resolve()
    found = _by_page(app)
    slices = (f"slices show files of toyengine/ under {root}, named by module (package.module) "
              "or by a path relative to that folder")

    def only(doc: str) -> str:
        assert len(found.get(doc, [])) == 1, (doc, found.get(doc))
        return found[doc][0].split(": ERROR: ", 1)[1]

    # 1. More options than letters.
    assert only("quiz-options") == (
        "question in 'quiz-options': question 1 ('Which of these eleven?') has 11 options; a "
        "question may have at most 10, lettered A to J [nanobook.quiz_syntax]")
    assert "quiz-ten-options" not in found
    ten = page(app, "quiz-ten-options")
    assert re.findall(r'data-position="(\d)"', ten) == [str(i) for i in range(10)]
    assert '<span class="nb-option-letter" aria-hidden="true">J</span>' in ten

    # 2. Names (and a language) that are markup never reach the page.
    assert only("quiz-name") == (
        "quiz in 'quiz-name': :name: 'x\"><img src=x onerror=alert(1)>' is not allowed; "
        f"{ALLOWED_NAME} [nanobook.quiz_syntax]")
    assert only("sim-name") == (
        "simulator 'paged-allocator' in 'sim-name': :name: 'y\"><script>alert(2)</script>' is "
        f"not allowed; {ALLOWED_NAME} [nanobook.simulator]")
    assert only("slice-name") == (
        "engine-slice 'toyengine.pool:Pool.take' in 'slice-name': :name: 'Take Block' is not "
        f"allowed; {ALLOWED_NAME} [nanobook.slice_syntax]")
    assert only("slice-language") == (
        "engine-slice 'toyengine.pool:Pool.take' in 'slice-language': :language: "
        "'py\"><script>alert(3)</script>' is not a lexer name; give a Pygments lexer name "
        "(letters, digits and + # . _ -), such as python [nanobook.slice_syntax]")
    for doc in ("quiz-name", "sim-name", "slice-language"):
        html = page(app, doc)
        assert "onerror" not in html and "alert(" not in html, doc

    # 3. Slices show the engine and nothing else.
    assert only("slice-absolute") == (
        f"engine-slice '/etc/passwd' in 'slice-absolute': '/etc/passwd' is an absolute path; "
        f"{slices} [nanobook.slice_path]")
    dotdot = "toyengine/../../../../../../../../../../../../etc/passwd"
    assert only("slice-dotdot") == (
        f"engine-slice '{dotdot}' in 'slice-dotdot': '{dotdot}' leads to /etc/passwd, outside "
        f"the files slices may show; {slices} [nanobook.slice_path]")
    assert only("slice-link") == (
        "engine-slice 'toyengine/secret.py' in 'slice-link': 'toyengine/secret.py' is a link to "
        f"{(tmp_path / 'secret.py').resolve()}, outside the files slices may show; {slices} "
        "[nanobook.slice_path]")
    assert only("slice-module-outside") == (
        "engine-slice 'conf' in 'slice-module-outside': 'conf' (conf.py) is outside the files "
        f"slices may show; {slices} [nanobook.slice_path]")
    published = [p.relative_to(app.outdir).as_posix() for p in Path(app.outdir, "code").rglob("*")
                 if p.is_file()]
    assert published == []  # no page of a whole file was made for any of them

    # 6. A file that is not UTF-8.
    assert only("slice-not-utf8") == (
        "engine-slice 'toyengine.legacy' in 'slice-not-utf8': toyengine/legacy.py is not UTF-8 "
        "text (line 1, byte 0xe9: invalid continuation byte); slices show UTF-8 files only, so "
        "save it as UTF-8 [nanobook.slice_file]")

    # 4. A check that never ends is stopped at its time limit; the blocks after it do not run.
    loop = only("check-loop")
    assert loop.startswith(
        "check spin in 'check-loop' did not finish within its time limit of 1 s and was "
        "stopped; if it needs longer, give it more with `:timeout: SECONDS` (at most 3600)\n"
        "Traceback (most recent call last):\n"
        '  File "<check-loop: check spin>", line ')
    assert loop.endswith("CheckTimeout: stopped after 1 s, its time limit\n [nanobook.check_timeout]")
    assert "Not run: check spin above it failed." in page(app, "check-loop")
    bad_limits = [m.split(": ERROR: ", 1)[1] for m in found["check-timeout-option"]]
    assert bad_limits == [
        f"check in 'check-timeout-option': :timeout: {value!r} is not allowed; give the block's "
        "time limit in whole seconds, from 1 to 3600 (the default is 60) [nanobook.check_syntax]"
        for value in ("0", "soon", "3601")]

    # 5. KeyboardInterrupt and SystemExit raised by a block are that block's failure.
    assert only("check-interrupt") == (
        "check interrupt in 'check-interrupt' raised KeyboardInterrupt\n"
        "before\n"
        "Traceback (most recent call last):\n"
        '  File "<check-interrupt: check interrupt>", line 2, in <module>\n'
        "    raise KeyboardInterrupt\n"
        "KeyboardInterrupt\n"
        " [nanobook.check_failed]")
    assert only("check-exit") == (
        "check leave in 'check-exit' called sys.exit(2)\n [nanobook.check_failed]")

    # Every page was read and written: nothing stopped the build.
    assert sorted(found) == sorted(
        p.stem for p in srcdir.glob("*.md") if p.stem not in ("index", "quiz-ten-options"))
    assert all(Path(app.outdir, f"{p.stem}.html").is_file() for p in srcdir.glob("*.md"))
    assert app.statuscode == 1


@pytest.mark.sphinx("doctest", testroot="bad-input", freshenv=True)
def test_make_doctest_applies_the_time_limit_and_keeps_going(app):
    app.build()
    output = (Path(app.outdir) / "output.txt").read_text()
    assert ("nanobook.time_limit.CheckTimeout: check spin in 'check-loop' did not finish within "
            "its time limit of 1 s and was stopped; if it needs longer, give it more with "
            "`:timeout: SECONDS` (at most 3600)") in output
    assert ("nanobook.executed.BlockInterrupted: check interrupt in 'check-interrupt' raised "
            "KeyboardInterrupt") in output
    # Pages run in name order: check-loop after check-interrupt, and every block of both ran.
    assert output.index("Document: check-interrupt") < output.index("Document: check-loop")
    assert re.search(r"Doctest summary\n=+\n +5 tests\n +3 failures in tests\n", output), output
    assert app.statuscode == 1


# -- the user's Ctrl-C, told from the block's own KeyboardInterrupt -------------------------------


def _press_ctrl_c_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_a_keyboardinterrupt_the_block_raises_is_its_failure():
    outcome = run_code("raise KeyboardInterrupt('mine')\n", {}, "<t: check own>")
    assert outcome.error == "raised KeyboardInterrupt: mine"
    assert outcome.kind.value == "check_failed"


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt, even where the tests started with SIGINT ignored (a
    background job of a shell without job control inherits that)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_the_users_ctrl_c_stops_the_build(ctrl_c_raises):
    handler = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    timer = _press_ctrl_c_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        run_code("import time\ntime.sleep(30)\n", {}, "<t: check sleeping>")
    timer.join()
    assert time.monotonic() - start < 10
    assert signal.getsignal(signal.SIGINT) is handler


def test_the_users_ctrl_c_stops_the_build_even_when_the_block_catches_it(ctrl_c_raises):
    timer = _press_ctrl_c_after(0.3)
    namespace: dict = {}
    with pytest.raises(KeyboardInterrupt):
        run_code("import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n"
                 "    caught = True\n", namespace, "<t: check catching>")
    timer.join()
    assert namespace["caught"] is True


# -- the time limit ------------------------------------------------------------------------------


def test_the_time_limit_stops_a_loop_in_another_thread():
    """Off the main thread there is no SIGALRM: the watchdog thread stops the block."""
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(
        run_code("while True:\n    pass\n", {}, "<t: check spin>", timeout=1)))
    start = time.monotonic()
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    assert time.monotonic() - start < 10
    (outcome,) = outcomes
    assert outcome.timed_out and outcome.kind.value == "check_timeout"
    assert outcome.error.startswith("did not finish within its time limit of 1 s")


def test_a_timer_set_before_the_limit_keeps_working():
    """pytest-timeout, say: its handler runs when it is due, and it is set again afterwards."""
    fired = []

    def outer(signum, frame):
        fired.append(time.monotonic())

    previous = signal.signal(signal.SIGALRM, outer)
    saved = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # due before the limit: runs inside it
        with time_limit(5):
            time.sleep(0.5)
        assert len(fired) == 1 and 0.15 < fired[0] - start < 0.45
        signal.setitimer(signal.ITIMER_REAL, 30)  # due after the limit: set again afterwards
        with pytest.raises(CheckTimeout), time_limit(0.2):
            while True:
                pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 29 < left < 30 and len(fired) == 1
        assert signal.getsignal(signal.SIGALRM) is outer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, *saved)


def test_a_block_stuck_in_c_ends_the_process_at_twice_its_limit(tmp_path):
    """A C loop never returns to the interpreter: faulthandler names the block and exits 1."""
    script = tmp_path / "stuck.py"
    script.write_text(
        "import collections, itertools\n"
        "from nanobook.executed import run_code\n"
        "run_code('import collections, itertools\\n'\n"
        "         'collections.deque(itertools.count(), maxlen=0)\\n', {}, '<page: check stuck>',"
        " timeout=1)\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "_ext")})
    assert proc.returncode == 1
    assert 1.9 < time.monotonic() - start < 30
    assert proc.stderr.startswith("Timeout (0:00:02)!\n")
    assert 'File "<page: check stuck>", line 2 in <module>' in proc.stderr


# -- escaping ------------------------------------------------------------------------------------


_HAND_WRITTEN_HTML = ("quiz.py", "engine_slice.py", "simulator.py")
_HAND_WRITTEN_HTML += ("figure_plot.py",)


def _attribute_values(source: str) -> list[tuple[int, str]]:
    """(line, expression) of every ``{...}`` inside a quoted attribute of an f-string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        template, values = "", []
        for part in node.values:
            if isinstance(part, ast.Constant):
                template += part.value
            else:
                template += f"\0{len(values)}\0"
                values.append(ast.unparse(part.value))
        for attribute in re.findall(r"=\"([^\"]*)\"|='([^']*)'", template):
            for index in re.findall(r"\0(\d+)\0", "".join(attribute)):
                found.append((node.lineno, values[int(index)]))
    return found


def test_every_attribute_in_hand_written_html_goes_through_attr():
    unescaped = []
    for name in _HAND_WRITTEN_HTML:
        values = _attribute_values((ROOT / "_ext" / "nanobook" / name).read_text())
        assert values, name  # the scan finds the attributes it is meant to check
        unescaped += [f"{name}:{line}: {expr}" for line, expr in values
                      if not expr.startswith("attr(")]
    assert unescaped == []


def test_the_scan_sees_an_unescaped_attribute():
    assert _attribute_values("x = f'<a id=\"{name}\" data-n=\\'{attr(n)}\\'>{text}</a>'\n") == [
        (1, "name"), (1, "attr(n)")]


_TAG = re.compile(r"<(?:/[a-z][a-z0-9]*\s*|[a-z][a-z0-9]*"
                  r"(?:\s+[a-z][a-z0-9-]*(?:=(?:\"[^\"<>]*\"|'[^'<>]*'))?)*\s*/?)>")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


def assert_attributes_escaped(html: str) -> None:
    """Every ``<`` opens a well-formed tag, and every ``&`` in a tag starts an entity."""
    position = 0
    while (start := html.find("<", position)) != -1:
        tag = _TAG.match(html, start)
        assert tag, f"not a well-formed tag: {html[start:start + 120]!r}"
        text = tag.group(0)
        assert all(_ENTITY.match(text, i) for i, c in enumerate(text) if c == "&"), text
        position = tag.end()


@pytest.mark.sphinx("html", testroot="markup", freshenv=True)
def test_markup_characters_in_a_valid_book_stay_text(app):
    app.build()
    assert warnings_of(app) == ""
    html = page(app, "q&a")
    quiz = fragment(html, "section", "nb-quiz")
    sim = fragment(html, "figure", "nb-sim").split("<details", 1)[0]
    engine_slice = fragment(html, "figure", "nb-slice")
    for name, part in (("markup-quiz.html", quiz), ("markup-sim.html", sim),
                       ("markup-slice.html", engine_slice)):
        assert_snapshot(name, part)
        assert_attributes_escaped(part)
    assert 'data-doc="q&amp;a"' in quiz
    assert "The &quot;quiz&quot; of &lt;Q&amp;A&gt; &#x27;one&#x27;" in quiz
    assert "R&amp;D: &quot;quotes&quot; &lt;angles&gt; &#x27;single&#x27;" in engine_slice


def test_the_escape_check_can_fail():
    with pytest.raises(AssertionError, match="not a well-formed tag"):
        assert_attributes_escaped('<section id="x"><img src=x onerror=alert(1)>">')
    with pytest.raises(AssertionError):
        assert_attributes_escaped('<a href="?a=1&b=2">')
    assert_attributes_escaped('<a href="?a=1&amp;b=2" class="x">&lt;b&gt;</a>')
