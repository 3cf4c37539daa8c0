"""Settings dataclasses and the command-line flags made from them (one definition of each).

A field declared with `setting(default, help, choices)` becomes the flag
`--field-name`, with its help, default and choices in `--help`; a field whose
default is itself a settings dataclass contributes its fields as a group.

Example:
>>> import argparse, dataclasses
>>> @dataclasses.dataclass
... class Run:
...     epochs: int = setting(4, "passes over the data")
>>> parser = argparse.ArgumentParser()
>>> add_setting_arguments(parser, Run())
>>> settings_from_arguments(Run(), parser.parse_args(["--epochs", "2"]))
Run(epochs=2)
"""

import argparse
import dataclasses
import math
import warnings

from keras_siamese.checks import check_integer, is_number


def setting(default, help, choices=None, type=None, renamed_from=()):
    """A dataclass field with the help text (and choices) of its command-line flag.

    Dataclass defaults (tuples, nested settings) are copied per instance. A
    `None` default ("chosen for you", explained in `help`) names the flag's `type`;
    an empty tuple default names its items' `type`. `renamed_from` lists the
    flag's earlier names, accepted for one release with a warning naming the flag.
    """
    metadata = {"help": help, "choices": choices, "type": type, "renamed_from": tuple(renamed_from)}
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_integers(settings, names, minimum=1):
    """Raises `ValueError` unless each named field of `settings` is an integer >= `minimum`.

    Example:
    >>> check_integers(Run(epochs=0), ["epochs"])  # doctest: +SKIP
    ValueError: epochs must be a positive integer, got 0.
    """
    for name in names:
        check_integer(getattr(settings, name), name, minimum)


def check_fraction(settings, name):
    """Raises `ValueError` unless the named field of `settings` is a number strictly between 0 and 1."""
    value = getattr(settings, name)
    if not is_number(value) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}.")


def check_positive_number(settings, name):
    """Raises `ValueError` unless the named field of `settings` is a finite number > 0."""
    value = getattr(settings, name)
    if not is_number(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}.")


def add_setting_arguments(parser, settings):
    """Adds a flag per field of the settings instance `settings`, its values as defaults.

    Nested settings become argument groups. Tuples are comma-separated lists,
    booleans `--flag` / `--no-flag`.
    """
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            add_setting_arguments(parser.add_argument_group(field.metadata.get("help")), value)
            continue
        flag = "--" + field.name.replace("_", "-")
        help = field.metadata.get("help", "")
        choices = field.metadata.get("choices")
        if isinstance(value, bool):
            action = parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value,
                                         help=f"{help} (default: {value})")
        elif isinstance(value, tuple):
            shown = ",".join(str(item) for item in value) or "none"
            action = parser.add_argument(flag, type=_comma_list(value, field.metadata.get("type")), default=value,
                                         metavar="A,B,...", help=f"{help}; comma-separated (default: {shown})")
        else:
            shown = "auto" if value is None else value
            action = parser.add_argument(flag, type=field.metadata.get("type") or type(value), default=value,
                                         choices=choices, help=f"{help} (default: {shown})")
        for old in field.metadata.get("renamed_from", ()):
            parser.add_argument(old, dest=field.name, action=_RenamedFlag, flag=flag, parse=action.type,
                                default=argparse.SUPPRESS,
                                help=f"the old name of {flag}, kept for one release (default: as that flag)")


def settings_from_arguments(settings, args):
    """A copy of the settings instance `settings` with the values parsed into `args`."""
    values = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            values[field.name] = settings_from_arguments(value, args)
        else:
            values[field.name] = getattr(args, field.name)
    return dataclasses.replace(settings, **values)


class _RenamedFlag(argparse.Action):
    """A flag's earlier name: parsed as the flag, with a warning that names the flag."""

    def __init__(self, option_strings, dest, flag, parse, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.flag, self.parse = flag, parse

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn(f"{option_string} is renamed {self.flag}; the old name goes in the next release.",
                      FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, self.parse(values) if self.parse else values)


def _comma_list(default, item_type=None):
    item_type = item_type or (type(default[0]) if default else str)

    def parse(value):
        try:
            return tuple(item_type(item) for item in value.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {item_type.__name__} values, got {value!r}"
            ) from None

    return parse
