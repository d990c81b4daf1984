"""
Run Twisted's own test modules with txdefer installed.

Usage: python run_trial.py [--json PATH] [--stock] MODULE...

``txdefer.install()`` runs before any other Twisted module is imported; the script
then checks that the test modules really see txdefer's classes, and runs them with
trial.  ``--stock`` runs them on Twisted's own ``Deferred`` instead (the baseline
``compare.py`` measures against).  Exit status is trial's.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="write per-test outcomes here")
    parser.add_argument("--stock", action="store_true", help="do not install txdefer")
    parser.add_argument("modules", nargs="+")
    options = parser.parse_args()

    import txdefer

    if not options.stock:
        txdefer.install()

    import twisted.internet.defer as defer

    if not options.stock:
        assert defer.Deferred is txdefer.Deferred, "install() did not take effect"
        assert defer.DeferredList is txdefer.DeferredList

    from twisted.trial import reporter, runner

    loader = runner.TestLoader()
    suite = loader.loadByNames(options.modules, recurse=True)

    # Every loaded test module must see the Deferred chosen.
    for name in options.modules:
        module = sys.modules.get(name)  # None for a class (``module.TestCase``)
        seen = getattr(module, "Deferred", None)
        if seen is not None and seen is not defer.Deferred:
            print(f"{name}.Deferred is not {defer.Deferred!r}: {seen!r}", file=sys.stderr)
            return 3

    outcomes: dict[str, str] = {}

    class Recorder(reporter.TreeReporter):
        def addSuccess(self, test):
            outcomes[test.id()] = "pass"
            super().addSuccess(test)

        def addFailure(self, test, fail):
            outcomes[test.id()] = "fail"
            super().addFailure(test, fail)

        def addError(self, test, error):
            outcomes[test.id()] = "error"
            super().addError(test, error)

        def addSkip(self, test, reason):
            outcomes[test.id()] = "skip"
            super().addSkip(test, reason)

        def addExpectedFailure(self, test, error, todo=None):
            outcomes[test.id()] = "xfail"
            super().addExpectedFailure(test, error, todo)

        def addUnexpectedSuccess(self, test, todo=None):
            outcomes[test.id()] = "xpass"
            super().addUnexpectedSuccess(test, todo)

    trialRunner = runner.TrialRunner(Recorder, stream=sys.stdout, realTimeErrors=False)
    result = trialRunner.run(suite)
    if options.json:
        with open(options.json, "w") as f:
            json.dump(
                {"installed": txdefer.installed(), "outcomes": outcomes}, f, indent=1
            )
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
