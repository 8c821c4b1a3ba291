"""Code, comments, the Makefile and test names speak of the product, not of how it was made
(the commit log holds the history)."""

from __future__ import annotations

import re
import subprocess

from tests.support import REPO, git

# An upstream project's issue ("pytorch issues 160732") explains why code is as it is.
MAKING_OF = re.compile(
    r"(?<!pytorch )\bissues?\s*#?\s*\d+|\bissue_\d+|\bbrief\b|\broadmap|\bsaga\b", re.I
)
CODE = re.compile(r"(\.py|\.toml|\.ya?ml|\.sh|\.cfg|^Makefile|^\.ci/run)$")


def test_no_words_about_the_making_of_the_code():
    listed = git("ls-files", "--cached", "--others", "--exclude-standard")
    names = subprocess.run(listed, capture_output=True, text=True, check=True)
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in names.stdout.splitlines()
        if CODE.search(name) and (REPO / name).is_file()
        for number, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1)
        if MAKING_OF.search(line)
    ]
    assert found == []
