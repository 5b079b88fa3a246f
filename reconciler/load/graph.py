"""The order between apps: waves and depends_on.

Pure checks over the parsed apps: every dependency names a known app, no app
depends on an app of a later wave (it could never be applied first), and the
dependency graph has no cycle. A cycle is reported once, at the app.yaml of
its alphabetically first app, spelled `a -> b -> a`.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.errors import Problem
from reconciler.load.apps import AppSpec
from reconciler.load.schema import suggest
from reconciler.load.yamlio import shown
from reconciler.model import Location


def check_graph(apps: Mapping[str, AppSpec]) -> list[Problem]:
    problems: list[Problem] = []
    for name in sorted(apps):
        spec = apps[name]
        for dep, line in spec.dependency_lines.items():
            where = Location(file=spec.app.location.file, line=line)
            other = apps.get(dep)
            if other is None:
                problems.append(Problem(location=where, message=(
                    f"depends_on: unknown app {shown(dep)}{suggest(dep, apps)}")))
            elif other.app.wave > spec.app.wave:
                problems.append(Problem(location=where, message=(
                    f"depends_on: {dep!r} is in wave {other.app.wave}, later than this app's "
                    f"wave {spec.app.wave}; a dependency must be in the same or an earlier wave")))
    for cycle in find_cycles({n: tuple(s.dependency_lines) for n, s in apps.items()}):
        spec = apps[cycle[0]]
        line = spec.dependency_lines[cycle[1]]
        problems.append(Problem(location=Location(file=spec.app.location.file, line=line),
                                message="depends_on: dependency cycle " + " -> ".join(cycle)))
    return problems


def find_cycles(edges: Mapping[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    """One cycle per strongly connected component that has one, each starting
    and ending at the component's smallest name. Iterative Tarjan, so a long
    chain of apps cannot overflow the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = [d for d in edges.get(node, ()) if d in edges]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    cycles.append(_cycle_in(set(component), edges))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(cycles)


def _cycle_in(component: set[str], edges: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A shortest path back to the component's smallest member (breadth first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for dep in sorted(edges.get(node, ())):
                if dep == start:
                    return (start, *_path_to(parents, node, start), start)
                if dep in component and dep not in parents and dep != start:
                    parents[dep] = node
                    following.append(dep)
        frontier = following
    return (start, start)


def _path_to(parents: Mapping[str, str], node: str, start: str) -> list[str]:
    path = []
    while node != start:
        path.append(node)
        node = parents[node]
    return path[::-1]
