"""The pytest plugin, tested from the outside with ``pytester``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

APP_MODULE = '''
from starlette.applications import Starlette
from taskless.integrations.starlette import Taskless

app = Starlette()
taskless = Taskless(app)
seen = []

@taskless.queue("emails")
async def send(payload, meta):
    seen.append((payload, meta.attempt))
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # Apps read TASKLESS_URL when they are created (at import): the ini option sets it first.
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\ntaskless_url = memory://\n"
    )
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.syspathinsert()
    return pytester


def test_fixture_routes_queues_of_the_test_to_a_fresh_fake(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import os
        from taskless.core.queue import Queue
        from taskless.testing import TasklessFake

        def test_one(taskless_fake):
            assert isinstance(taskless_fake, TasklessFake)
            assert os.environ["TASKLESS_URL"] == "memory://"
            Queue("emails").enqueue("welcome", {"to": "ada"}, {"retries": 2})
            taskless_fake.assert_enqueued("welcome", queue="emails",
                                          payload={"to": "ada"}, options={"retries": 2})

        def test_two_is_fresh(taskless_fake):
            assert taskless_fake.jobs() == []
    ''')
    project.runpytest().assert_outcomes(passed=2)


def test_marker_configures_the_fake_and_mounts_the_app(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest
        import myapp

        @pytest.mark.taskless(app="myapp:app", start="2024-01-01T00:00:00Z")
        def test_delivers_through_the_app(taskless_fake):
            assert taskless_fake.now.year == 2024
            taskless_fake.queue("emails").enqueue("w", {"n": 1})
            taskless_fake.run_due()
            taskless_fake.assert_delivered("w", attempts=[1], status=200)
            assert myapp.seen == [({"n": 1}, 1)]

        @pytest.mark.taskless(app=myapp.taskless, mode="direct")
        @pytest.mark.anyio
        async def test_direct_and_async(taskless_fake):
            await myapp.send.enqueue("d", {"n": 2})
            await taskless_fake.run_due_async()
            taskless_fake.assert_delivered("d", status=200)

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
    ''')
    project.runpytest().assert_outcomes(passed=2)


def test_taskless_app_fixture_is_used(project: pytest.Pytester) -> None:
    project.makeconftest('''
        import pytest
        import myapp

        @pytest.fixture
        def taskless_app():
            return myapp.app
    ''')
    project.makepyfile(test_it='''
        def test_it(taskless_fake):
            taskless_fake.queue("emails").enqueue("w", 1)
            assert taskless_fake.run_due()[0].status == 200
    ''')
    project.runpytest().assert_outcomes(passed=1)


def test_failing_assertions_say_what_happened(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless(app="myapp:app", start="2024-01-01T00:00:00Z")
        def test_enqueued(taskless_fake):
            taskless_fake.queue("emails").enqueue("welcome", {"to": "ada"}, {"retries": 3})
            taskless_fake.assert_enqueued("goodbye", queue="emails")

        @pytest.mark.taskless(app="myapp:app", start="2024-01-01T00:00:00Z")
        def test_delivered(taskless_fake):
            taskless_fake.queue("emails").enqueue("welcome", {"to": "ada"},
                                                  {"run_at": "2024-01-02T00:00:00Z"})
            taskless_fake.run_due()
            taskless_fake.assert_delivered("welcome", times=1)
    ''')
    result = project.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*expected job 'goodbye' in queue 'emails' to have been enqueued at least once, found 0.",
        "*Enqueued (1):",
        "*emails/welcome payload={'to': 'ada'} options={retries: 3} (created at 2024-01-01T00:00:00Z)",
    ])
    result.stdout.fnmatch_lines([
        "*deliveries of job 'welcome': there was none; expected 1 attempt(s), found 0.",
        "*Deliveries: none.",
        "*Scheduled (1):",
        "*emails/welcome at 2024-01-02T00:00:00Z",
    ])


def test_unserved_deliveries_fail_at_teardown_unless_turned_off(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        def test_nothing_mounted(taskless_fake):
            taskless_fake.queue("emails").enqueue("w", 1, {"retries": 0})
            taskless_fake.run_due()

        @pytest.mark.taskless(assert_all_served=False)
        def test_turned_off(taskless_fake):
            taskless_fake.queue("emails").enqueue("w", 1, {"retries": 0})
            taskless_fake.run_due()
    ''')
    result = project.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*1 delivery attempt(s) found nothing to serve them (*or the app answered 404):*",
        "*@pytest.mark.taskless(assert_all_served=False)*",
    ])


def test_a_404_from_the_app_fails_at_teardown(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless(app="myapp:app")
        def test_no_such_queue(taskless_fake):
            taskless_fake.queue("nobody").enqueue("w", 1, {"retries": 0})
            assert taskless_fake.run_due()[0].status == 404
    ''')
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*1 delivery attempt(s) found nothing to serve them*",
        "*nobody/w attempt 1 at * -> 404 (HTTP 404:*no queue is registered at*",
    ])


def test_markers_merge_the_closest_winning_per_option(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        pytestmark = pytest.mark.taskless(
            app="myapp:app", start="2024-01-01T00:00:00Z", max_deliveries=5
        )

        def served(fake):
            fake.queue("emails").enqueue("w", 1)
            return [d.status for d in fake.run_due()]

        def test_module_alone(taskless_fake):
            assert (taskless_fake.now.isoformat(), taskless_fake.max_deliveries) == (
                "2024-01-01T00:00:00+00:00", 5)
            assert served(taskless_fake) == [200]

        @pytest.mark.taskless(assert_all_served=False)
        def test_function_adds_to_module(taskless_fake):
            assert taskless_fake.now.isoformat() == "2024-01-01T00:00:00+00:00"
            assert served(taskless_fake) == [200]
            taskless_fake.queue("nobody").enqueue("x", 1, {"retries": 0})
            assert [d.status for d in taskless_fake.run_due()] == [404]  # not checked

        @pytest.mark.taskless(start="2024-03-01T00:00:00Z", max_deliveries=6)
        class TestLevels:
            def test_class_over_module(self, taskless_fake):
                assert (taskless_fake.now.isoformat(), taskless_fake.max_deliveries) == (
                    "2024-03-01T00:00:00+00:00", 6)
                assert served(taskless_fake) == [200]

            @pytest.mark.taskless(max_deliveries=7)
            def test_function_over_class(self, taskless_fake):
                assert (taskless_fake.now.isoformat(), taskless_fake.max_deliveries) == (
                    "2024-03-01T00:00:00+00:00", 7)
                assert served(taskless_fake) == [200]

        @pytest.mark.taskless(start="2024-05-01T00:00:00Z", mode="direct")
        @pytest.mark.taskless(start="2024-06-01T00:00:00Z", max_deliveries=9)
        def test_stacked_the_nearest_wins(taskless_fake):
            assert (taskless_fake.now.isoformat(), taskless_fake.max_deliveries) == (
                "2024-06-01T00:00:00+00:00", 9)
            assert taskless_fake.mode == "direct"
    ''')
    project.runpytest().assert_outcomes(passed=5)


@pytest.mark.parametrize(
    "source",
    [
        """
        import pytest

        pytestmark = pytest.mark.taskless(mode="weird")

        @pytest.mark.taskless(start="2024-01-01T00:00:00Z")
        def test_it(taskless_fake):
            pass
        """,
        """
        import pytest

        @pytest.mark.taskless(mode="weird")
        def test_it(taskless_fake):
            pass
        """,
    ],
    ids=["module-level", "on-the-test-without-an-app"],
)
def test_a_bad_mode_is_refused_wherever_it_is_given(
    project: pytest.Pytester, source: str
) -> None:
    project.makepyfile(test_it=source)
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*@pytest.mark.taskless: mode='weird' is not a mode; valid modes: 'app', 'direct'",
    ])


def test_bad_marker_options_are_usage_errors(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless(no_such_option=1)
        def test_it(taskless_fake):
            pass
    ''')
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.taskless:*no_such_option*"])


def test_marker_arguments_of_the_wrong_type_are_usage_errors(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless(allowed_endpoints="http://127.0.0.1:8000/")
        def test_endpoints(taskless_fake):
            pass

        @pytest.mark.taskless(backoff=5)
        def test_backoff(taskless_fake):
            pass

        @pytest.mark.taskless(max_deliveries=0)
        def test_max_deliveries(taskless_fake):
            pass

        @pytest.mark.taskless(assert_all_served="no")
        def test_served(taskless_fake):
            pass
    ''')
    result = project.runpytest()
    result.assert_outcomes(errors=4)
    result.stdout.re_match_lines([
        r"E +pytest\.UsageError: " + re.escape(f"@pytest.mark.taskless: {message}") + "$"
        for message in (
            (
                "allowed_endpoints must be a list of http(s) URL prefixes, such as "
                "['https://app.example.com/'], not str 'http://127.0.0.1:8000/'"
            ),
            (
                "backoff must be a taskless.core.engine.Backoff, such as Backoff(base=1.0, "
                "cap=3600.0), not int 5"
            ),
            "max_deliveries must be at least 1, not 0",
            "assert_all_served must be True or False, not 'no'",
        )
    ])


def test_positional_marker_arguments_are_usage_errors(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless("myapp:app")
        def test_it(taskless_fake):
            pass
    ''')
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        (
            "*@pytest.mark.taskless takes keyword arguments only, got positional 'myapp:app'"
            " (did you mean app='myapp:app'?); valid arguments: app, mode, settings, start, url,*"
            "assert_all_served"
        ),
    ])


def test_unknown_marker_arguments_list_the_valid_ones(project: pytest.Pytester) -> None:
    project.makepyfile(test_it='''
        import pytest

        @pytest.mark.taskless(ap="myapp:app")
        def test_it(taskless_fake):
            pass
    ''')
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*@pytest.mark.taskless: unknown argument(s) 'ap'; valid arguments: app, mode,*",
    ])


def test_marker_is_registered(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.taskless(*): configure the taskless_fake fixture*"])


def test_ini_option_sets_the_url_before_conftest_imports(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntaskless_url = memory://\n")
    pytester.makeconftest('''
        import os
        URL_AT_IMPORT = os.environ.get("TASKLESS_URL")
    ''')
    pytester.makepyfile(test_it='''
        import conftest

        def test_it():
            assert conftest.URL_AT_IMPORT == "memory://"
    ''')
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_ini_option_leaves_the_environment_as_it_found_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKLESS_URL", "http://127.0.0.1:9")
    pytester.makeini("[pytest]\ntaskless_url = memory://\n")
    pytester.makepyfile(test_it="""
        import os

        def test_it():
            assert os.environ["TASKLESS_URL"] == "memory://"
    """)
    pytester.runpytest().assert_outcomes(passed=1)
    import os

    assert os.environ["TASKLESS_URL"] == "http://127.0.0.1:9"


def test_importing_taskless_does_not_import_pytest() -> None:
    code = (
        "import sys, taskless, taskless.testing, taskless.testing.memory\n"
        "from taskless.core.queue import Queue\n"
        "Queue('q', url='memory://')\n"
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules, 'pytest imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
