"""A custom import-linter contract: modules that must not use some names of a package.

import-linter sees modules, not names, so ``from flask import request`` and
``from flask import current_app`` look the same to its own contracts. This one reads the import
lines grimp recorded (imports inside functions included) and refuses the forbidden names.
Registered in pyproject.toml (``contract_types``) and run by ``make lint``.
"""

from __future__ import annotations

import re

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class ForbiddenNamesContract(Contract):
    """source_modules (and their submodules) must not import forbidden_names from imported_module."""

    source_modules = fields.ListField(subfield=fields.StringField())
    imported_module = fields.StringField()
    forbidden_names = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        names = "|".join(re.escape(n) for n in self.forbidden_names)
        pattern = re.compile(rf"\bimport\b.*\b({names})\b|\b{re.escape(self.imported_module)}\.({names})\b")
        found = []
        for source in self.source_modules:
            for module in sorted({source} | graph.find_descendants(source)):
                for detail in graph.get_import_details(importer=module, imported=self.imported_module):
                    line = detail["line_contents"]
                    if pattern.search(line):
                        found.append((module, detail["line_number"], line))
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, line_number, line in check.metadata["found"]:
            output.print_error(f"{module} (l.{line_number}): {line}")
            output.new_line()
