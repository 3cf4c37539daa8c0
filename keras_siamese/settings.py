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

from keras_siamese.checks import check_integer, is_number


def setting(default, help, choices=None, type=None):
    """A dataclass field with the help text (and choices) of its command-line flag.

    Dataclass defaults (tuples, nested settings) are copied per instance. A
    `None` default ("chosen for you", explained in `help`) names the flag's `type`;
    an empty tuple default names its items' `type`.
    """
    metadata = {"help": help, "choices": choices, "type": type}
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
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value,
                                help=f"{help} (default: {value})")
        elif isinstance(value, tuple):
            shown = ",".join(str(item) for item in value) or "none"
            parser.add_argument(flag, type=_comma_list(value, field.metadata.get("type")), default=value, metavar="A,B,...",
                                help=f"{help}; comma-separated (default: {shown})")
        else:
            shown = "auto" if value is None else value
            parser.add_argument(flag, type=field.metadata.get("type") or type(value), default=value,
                                choices=choices, help=f"{help} (default: {shown})")


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
