"""Pictures of an explanatory graph: the layered drawing, each node's strip of patches where it
fires, and nodes located on a photo."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from fixtrace.graph_mining.graph import ExplanatoryGraph
from fixtrace.graph_mining.localize import Located
from fixtrace.images.load import load_photo
from fixtrace.render.legend import text_font
from fixtrace.render.tiles import tile_grid
from fixtrace.toolbox.top_images import cut_patch

#: One colour per graph layer (lowest first), cycled.
PALETTE = ((230, 80, 60), (60, 140, 230), (60, 180, 90), (200, 140, 30), (160, 80, 200), (40, 170, 170))
_FONT = 11


def layer_colour(layer: int) -> tuple[int, int, int]:
    return PALETTE[layer % len(PALETTE)]


def drawn_nodes(graph: ExplanatoryGraph, per_layer: int) -> list[list[int]]:
    """The strongest ``per_layer`` nodes of each layer (nodes are kept strongest first)."""
    return [list(range(min(per_layer, len(nodes)))) for nodes in graph.layers]


def draw_graph(graph: ExplanatoryGraph, per_layer: int = 12, width: int = 960) -> Image.Image:
    """The graph in layers, the top layer uppermost: each layer's strongest nodes left to right by
    their mean column, edges between drawn nodes darker the larger their weight."""
    font = text_font(_FONT)
    shown = drawn_nodes(graph, per_layer)
    band = 96
    image = Image.new("RGB", (width, 24 + band * len(graph.layers)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    where: dict[tuple[int, int], tuple[float, float]] = {}
    for k, nodes in enumerate(shown):
        y = 24 + band * (len(graph.layers) - 1 - k) + band / 2
        order = sorted(nodes, key=lambda v: float(graph.layers[k].mean_position[v, 1]))
        for slot, v in enumerate(order):
            where[(k, v)] = (150 + (width - 180) * (slot + 0.5) / max(len(order), 1), y)
        name = graph.layers[k].layer
        draw.text((6, y - 14), f"layer {k}", fill=(0, 0, 0), font=font)
        draw.text((6, y + 2), ("..." + name[-18:]) if len(name) > 21 else name, fill=(90, 90, 90), font=font)
    for e in graph.edges:
        a, b = where.get((e.layer + 1, e.parent)), where.get((e.layer, e.child))
        if a is not None and b is not None:
            shade = int(220 - 180 * min(max(e.weight, 0.0), 1.0))
            draw.line([a, b], fill=(shade, shade, shade), width=1 + int(2 * e.weight))
    for (k, v), (x, y) in where.items():
        draw.ellipse([x - 8, y - 8, x + 8, y + 8], fill=layer_colour(k), outline=(0, 0, 0))
        label = f"{int(graph.layers[k].filters[v])}.{int(graph.layers[k].patterns[v])}"
        draw.text((x - font.getlength(label) / 2, y + 10), label, fill=(0, 0, 0), font=font)
    draw.text(
        (6, 4),
        f"explanatory graph of {graph.model} ({len(graph.photos)} photos; node: filter.pattern)",
        fill=(0, 0, 0),
        font=font,
    )
    return image


def node_patches(graph: ExplanatoryGraph, layer: int, node: int, count: int, tile: int = 64) -> list[np.ndarray]:
    """The patches (receptive field at its inferred position) of the node's ``count`` best photos,
    each resized to ``tile`` square; empty when the graph holds no photos (a loaded one)."""
    if not graph.sources:
        return []
    field = graph.fields[layer]
    patches = []
    for photo_index, _, position in graph.top_photos(layer, node, count):
        cell = [int(round((position[a] - field.offset[a]) / max(field.stride[a], 1))) for a in (0, 1)]
        photo = load_photo(graph.sources[photo_index])
        box = graph.geometries[photo_index].box_to_original(*field.window(*cell))
        patch = cut_patch(photo.pixels, box, photo.size)
        patches.append(np.asarray(Image.fromarray(patch).convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR)))
    return patches


def strip(graph: ExplanatoryGraph, layer: int, node: int, count: int, tile: int = 64) -> Image.Image:
    """One node's patches in a row, labelled with their scores."""
    tiles = node_patches(graph, layer, node, count, tile)
    scores = [f"{s:.2f}" for _, s, _ in graph.top_photos(layer, node, count)]
    blank = [np.full((tile, tile, 3), 255, np.uint8)]
    grid = tile_grid(
        tiles or blank, columns=max(len(tiles), 1), labels=scores if tiles else None, caption=[graph.node_id(layer, node)]
    )
    return grid.image


def strips_overview(graph: ExplanatoryGraph, per_layer: int, count: int, tile: int = 56) -> Image.Image:
    """The strongest ``per_layer`` nodes of each layer (top layer first), one row of patches each."""
    rows, labels = [], []
    for k in reversed(range(len(graph.layers))):
        for v in drawn_nodes(graph, per_layer)[k]:
            patches = node_patches(graph, k, v, count, tile)
            patches += [np.full((tile, tile, 3), 255, np.uint8)] * (count - len(patches))
            rows += patches
            labels.append(graph.node_id(k, v))
    return tile_grid(
        rows, columns=count, row_labels=labels, caption=["each node's best photos, patch = its receptive field"]
    ).image


def draw_located(graph: ExplanatoryGraph, located: Located, per_layer: int = 12) -> Image.Image:
    """The photo with the strongest nodes of each layer marked where they were found (found ones only)."""
    photo = load_photo(located.source)
    image = Image.fromarray(photo.pixels).convert("RGB")
    sx, sy = image.width / photo.size[0], image.height / photo.size[1]
    draw = ImageDraw.Draw(image)
    radius = max(3, round(min(image.size) / 80))
    for k, nodes in enumerate(drawn_nodes(graph, per_layer)):
        points = located.on_photo(k)
        for v in nodes:
            if located.scores[k][v] > 0:
                x, y = points[v, 0] * sx, points[v, 1] * sy
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=layer_colour(k), outline=(255, 255, 255))
    return image
