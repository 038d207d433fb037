// Parse `scrapy lineage` output with the real parsers. Reads one JSON job per line on stdin:
//   {"format": "mermaid" | "dot", "text": "..."}
// and answers one JSON line per job:
//   {"ok": true, "nodes": [[id, label], ...], "edges": [[from, to, label], ...]} or {"ok": false, "error": "..."}
// Mermaid: mermaid's own parser (the one GitHub and the Hub run), under jsdom since it needs a DOM to load.
// DOT: Graphviz itself (WebAssembly build), laid out to its JSON format.
import { createInterface } from 'node:readline';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
const { Graphviz } = await import('@hpcc-js/wasm-graphviz');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
const graphviz = await Graphviz.load();

async function checkMermaid(text) {
  await mermaid.parse(text); // throws on a syntax error
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  const db = diagram.db;
  const nodes = [...db.getVertices().values()].map((v) => [v.id, v.text, v.classes ?? []]);
  const edges = db.getEdges().map((e) => [e.start, e.end, e.text]);
  return { ok: true, type: diagram.type, nodes, edges };
}

function checkDot(text) {
  const out = JSON.parse(graphviz.layout(text, 'json', 'dot'));
  const objects = out.objects ?? [];
  const nodes = objects.map((o) => [o.name, o.label]);
  const edges = (out.edges ?? []).map((e) => [objects[e.tail].name, objects[e.head].name, e.label ?? null]);
  return { ok: true, nodes, edges };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const job = JSON.parse(line);
  let answer;
  try {
    answer = job.format === 'mermaid' ? await checkMermaid(job.text) : checkDot(job.text);
  } catch (err) {
    answer = { ok: false, error: String(err?.message ?? err) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
