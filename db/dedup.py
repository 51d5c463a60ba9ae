"""Group near-duplicate images by pHash distance, without comparing all pairs.

A BK-tree (a metric tree over Hamming distance) answers "every hash within d
of h" by visiting only the subtrees whose edge distance lies in
``[dist - d, dist + d]``; grouping n images costs ~n small queries instead of
n^2/2 comparisons. Images within ``threshold`` bits are joined, transitively
(union-find), so a resized copy of a resized copy lands with the original.
"""

from __future__ import annotations


class BKTree:
    __slots__ = ("root",)

    def __init__(self):
        self.root = None  # [hash, index, {distance: child}]

    def add(self, h: int, index: int) -> None:
        if self.root is None:
            self.root = [h, index, {}]
            return
        node = self.root
        while True:
            d = (h ^ node[0]).bit_count()
            child = node[2].get(d)
            if child is None:
                node[2][d] = [h, index, {}]
                return
            node = child

    def within(self, h: int, radius: int) -> list[int]:
        """Indices of every hash at Hamming distance <= radius from h."""
        out, stack = [], [self.root] if self.root else []
        while stack:
            node = stack.pop()
            d = (h ^ node[0]).bit_count()
            if d <= radius:
                out.append(node[1])
            for edge, child in node[2].items():
                if d - radius <= edge <= d + radius:
                    stack.append(child)
        return out


def duplicate_groups(hashes: list[int], threshold: int) -> list[int]:
    """For each hash, the index of its group's representative (the group's
    first member in input order)."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = BKTree()
    for i, h in enumerate(hashes):
        for j in tree.within(h, threshold):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        tree.add(h, i)
    return [find(i) for i in range(len(hashes))]
