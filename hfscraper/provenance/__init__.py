"""The provenance graph: relation extraction (`extract`), its rows in the crawl state (`store`), the networkx
graph (`graph.read_graph`) and the files under `output_dir/provenance/` (`outputs.rebuild`). See
docs/PROVENANCE.md."""
