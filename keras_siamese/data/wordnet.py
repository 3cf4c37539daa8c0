"""WordNet 3.0 glosses labelled by lexicographer file: a real labelled text corpus that
works offline (45 classes such as noun.animal, verb.motion; 117,659 glosses).

Sources: the full database of the Debian package `wordnet-base` (`/usr/share/wordnet`), or
the sample shipped in this package (`wordnet_glosses.tsv.gz`: up to 300 glosses per
class, all 45 classes, WordNet 3.0 license in `WORDNET_LICENSE`). Regenerate the sample
from the Debian files with `python -m keras_siamese.data.wordnet --write-sample`.
"""

import argparse
import collections
import gzip
import os
import pathlib

import numpy as np

from keras_siamese.checks import check_integer

# Lexicographer file names by number (lexnames(5WN)).
WORDNET_LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
SYSTEM_WORDNET_DIR = "/usr/share/wordnet"
BUNDLED_SAMPLE = pathlib.Path(__file__).with_name("wordnet_glosses.tsv.gz")
_DATA_FILES = (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))
_SAMPLE_HEADER = "synset\tlexname\tgloss"


def read_wordnet_synsets(directory=None):
    """Reads `data.noun`, `data.verb`, `data.adj`, `data.adv` of a WordNet 3.0 database.

    `directory` defaults to `SYSTEM_WORDNET_DIR`. Returns a list of `(synset_id, lexname, gloss)` in file order, where `synset_id` is
    `"<offset>-<n|v|a|r>"` (e.g. `"02084071-n"` for dog) and `gloss` is the text after
    " | " (definition and quoted examples), stripped of surrounding spaces.

    Example:
    >>> synsets = read_wordnet_synsets()  # doctest: +SKIP
    >>> synsets[0]  # doctest: +SKIP
    ('00001740-n', 'noun.Tops', 'that which is perceived or known or inferred to have ...')
    """
    directory = SYSTEM_WORDNET_DIR if directory is None else directory
    missing = [f"data.{name}" for name, _ in _DATA_FILES
               if not os.path.isfile(os.path.join(directory, f"data.{name}"))]
    if missing:
        raise FileNotFoundError(
            f"no WordNet database in {directory} (missing {', '.join(missing)}); "
            "install it with `apt-get install wordnet-base` or use source='bundled'."
        )
    synsets = []
    for name, pos in _DATA_FILES:
        path = os.path.join(directory, f"data.{name}")
        with open(path, encoding="utf-8") as file:
            for line_number, line in enumerate(file, start=1):
                if line.startswith("  "):  # license header
                    continue
                head, separator, gloss = line.partition(" | ")
                fields = head.split()
                if not separator or len(fields) < 2 or not fields[1].isdigit() \
                        or int(fields[1]) >= len(WORDNET_LEXNAMES):
                    raise ValueError(f"{path}, line {line_number}: not a WordNet synset line.")
                synsets.append((f"{fields[0]}-{pos}", WORDNET_LEXNAMES[int(fields[1])], gloss.strip()))
    return synsets


def gloss_definition(gloss):
    """The definition part of a gloss: its `;`-separated parts before the first quoted example.

    Example:
    >>> gloss_definition('a domesticated canine; occurs in many breeds; "the dog barked"')
    'a domesticated canine; occurs in many breeds'
    """
    parts = []
    for part in gloss.split(";"):
        if part.strip().startswith('"'):
            break
        parts.append(part)
    return ";".join(parts).strip()


def load_wordnet_glosses(source="auto", text="gloss", min_class_size=2):
    """WordNet glosses as a labelled corpus, classes = lexicographer files.

    Args:
        source: "auto" (the Debian database when installed, else the bundled sample),
            "bundled" (the sample shipped in the package), "system" (the database in
            `SYSTEM_WORDNET_DIR`), or a path: a WordNet database directory or a sample
            file written by `write_wordnet_sample`.
        text: "gloss", the whole gloss: definition and example sentences (12.4 words on
            average over the full database); or "definition", the gloss without its
            quoted examples (`gloss_definition`; 10.0 words).
        min_class_size: classes with fewer texts are left out (2 keeps every class that
            can give a positive pair; the full database's smallest class has 42).

    Returns:
        `(texts, labels, class_names)`: list of strings, int32 array of indices into
        `class_names`, the kept lexicographer file names in file-number order.

    Example:
    >>> texts, labels, names = load_wordnet_glosses("bundled")
    >>> len(names), names[labels[0]] in names
    (45, True)
    """
    if text not in ("gloss", "definition"):
        raise ValueError(f"text must be 'gloss' or 'definition', got {text!r}.")
    check_integer(min_class_size, "min_class_size")
    synsets = _read_source(source)
    sizes = collections.Counter(lexname for _, lexname, _ in synsets)
    kept_names = [name for name in WORDNET_LEXNAMES if sizes[name] >= min_class_size]
    if not kept_names:
        raise ValueError(f"no WordNet class has min_class_size={min_class_size} glosses.")
    index = {name: number for number, name in enumerate(kept_names)}
    kept = [(lexname, gloss) for _, lexname, gloss in synsets if lexname in index]
    texts = [gloss if text == "gloss" else gloss_definition(gloss) for _, gloss in kept]
    labels = np.array([index[lexname] for lexname, _ in kept], dtype=np.int32)
    return texts, labels, kept_names


def _read_source(source):
    if source == "auto":
        system_files = os.path.join(SYSTEM_WORDNET_DIR, "data.noun")
        source = "system" if os.path.isfile(system_files) else "bundled"
    if source == "system":
        return read_wordnet_synsets(SYSTEM_WORDNET_DIR)
    if source == "bundled":
        return _read_sample(BUNDLED_SAMPLE)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            f"source must be 'auto', 'bundled', 'system', a WordNet directory or a sample file; "
            f"got {source!r}."
        )
    if os.path.isdir(source):
        return read_wordnet_synsets(source)
    if os.path.isfile(source):
        return _read_sample(source)
    raise ValueError(
        f"source must be 'auto', 'bundled', 'system', a WordNet directory or a sample file; "
        f"got {source!r}, which does not exist."
    )


def _read_sample(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        header = file.readline().rstrip("\n")
        if header != _SAMPLE_HEADER:
            raise ValueError(f"{path} is not a WordNet sample: its header is {header!r}.")
        rows = [line.rstrip("\n").split("\t") for line in file if line.strip()]
    bad = next((row for row in rows if len(row) != 3 or row[1] not in WORDNET_LEXNAMES), None)
    if bad is not None:
        raise ValueError(f"{path}: malformed row {bad!r}.")
    return [tuple(row) for row in rows]


def write_wordnet_sample(path=BUNDLED_SAMPLE, per_class=300, seed=0, directory=None):
    """Writes a gzipped TSV of up to `per_class` random glosses of each class, in file order.

    `directory` is a WordNet database directory (default `SYSTEM_WORDNET_DIR`). The output depends only on the database, `per_class` and `seed` (the gzip header
    carries no time stamp), so rerunning it reproduces the shipped file byte for byte.

    Example:
    >>> write_wordnet_sample("/tmp/sample.tsv.gz", per_class=5)  # doctest: +SKIP
    """
    synsets = read_wordnet_synsets(directory)
    positions_of = collections.defaultdict(list)
    for position, (_, lexname, _) in enumerate(synsets):
        positions_of[lexname].append(position)
    rng = np.random.default_rng(seed)
    chosen = []
    for name in WORDNET_LEXNAMES:
        positions = positions_of[name]
        chosen.extend(rng.choice(positions, min(per_class, len(positions)), replace=False).tolist())
    lines = [_SAMPLE_HEADER] + ["\t".join(synsets[i]) for i in sorted(chosen)]
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as file:
        file.write(("\n".join(lines) + "\n").encode("utf-8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the bundled WordNet gloss sample.")
    parser.add_argument("--write-sample", metavar="PATH", nargs="?", const=str(BUNDLED_SAMPLE),
                        required=True, help="output file (default: the packaged sample)")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wordnet-dir", default=None, help=f"default: {SYSTEM_WORDNET_DIR}")
    args = parser.parse_args(argv)
    write_wordnet_sample(args.write_sample, args.per_class, args.seed, args.wordnet_dir)


if __name__ == "__main__":
    main()
