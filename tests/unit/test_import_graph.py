"""No import cycle between the modules of retreat (imports inside functions count).

The layers between packages are import-linter contracts (``make lint``); this keeps the modules
inside a package acyclic too. A blueprint package and its view modules import each other by
design (the views register on the package's ``bp``), so edges inside one blueprint are left out.
"""

from __future__ import annotations

import grimp


def _blueprint(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["retreat", "blueprints"] and len(parts) > 2 else None


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("retreat")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if importer == "retreat" or imported == "retreat":
                continue  # the package root is the app factory, which imports everything
            if _blueprint(importer) and _blueprint(importer) == _blueprint(imported):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back and not any(m == "retreat" for m in back):
                cycles.append((importer, *back))
    assert cycles == []
