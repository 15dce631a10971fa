"""A griffe extension for the API reference: docstrings written for Sphinx, rendered by Markdown.

The docstrings of resultsfs name other objects the Sphinx way (``:class:`ResultStore```,
``:meth:`~resultsfs.store.ResultStore.bind```). Markdown has no such roles, so mkdocstrings
would show them as they are written. This turns each into a cross-reference that autorefs
resolves when the target is on the site, and into plain code when it is not (an ``optional``
reference never fails the build). It also escapes a ``#`` that starts a wrapped line of prose,
which Python-Markdown would take for a heading. Loaded by mkdocs.yml (mkdocstrings'
``extensions``); it changes nothing in the source files.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`(?P<target>[^`]+)`")
# A line of prose that starts with "#" and no space ("#18600: ..." wrapped onto a new line) is
# no heading in CommonMark, but Python-Markdown makes it one.
HASH_AT_LINE_START = re.compile(r"^(\s*)#(?=[^#\s])", re.MULTILINE)


def _identifier(obj: griffe.Object, target: str) -> str:
    """The full dotted path ``target`` names where ``obj`` is documented, or ``target`` as is."""
    if target.startswith("."):  # relative to the module's package, as in a module docstring
        package = obj.module if obj.module.is_package else obj.module.parent
        return f"{package.path if package else ''}{target}"
    head, _, rest = target.partition(".")
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, AttributeError):
        return target
    return f"{resolved}.{rest}" if rest else resolved


def _link_roles(obj: griffe.Object) -> None:
    if obj.docstring is not None:

        def link(match: re.Match[str]) -> str:
            target = match["target"]
            shown = target.rsplit(".", 1)[-1] if target.startswith("~") else target.lstrip(".")
            identifier = _identifier(obj, target.lstrip("~"))
            code = f"<code>{html.escape(shown)}</code>"
            return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

        text = HASH_AT_LINE_START.sub(r"\1\\#", obj.docstring.value)
        obj.docstring.value = ROLE.sub(link, text)
    for member in obj.members.values():
        if not member.is_alias:
            _link_roles(member)  # type: ignore[arg-type]


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of a package once it is loaded.

    ``on_package`` is griffe 2's name of the event, ``on_package_loaded`` griffe 1's. The
    rewrite is idempotent, so a griffe that calls both does no harm.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _link_roles(pkg)

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _link_roles(pkg)
