#!/usr/bin/env node
// An independent oracle for hfscraper.ipfs: the CID (and optionally a CAR) of a file or folder as the npm
// `ipfs-unixfs-importer` (pinned in package-lock.json) builds it, for one of hfscraper's named profiles.
//
//   node tests/js/oracle.mjs [--profile P] [--car OUT.car] PATH     prints the CID
//   node tests/js/oracle.mjs --batch < jobs.jsonl                   one JSON answer line per JSON job line
//
// Batch jobs (one node process for many CIDs keeps the tests fast):
//   {"op": "add", "path": "/abs", "profile": "kubo-cidv1", "car": "/abs/out.car"?, "options": {...}?}
//       -> {"cid": "...", "blocks": N}      options override the profile: chunkSize, maxChildrenPerNode,
//                                           cidVersion, rawLeaves, shardSplitThresholdBytes, shardSplitStrategy
//   {"op": "murmur", "hex": "..."}          -> {"hash": "<h1 of murmur3-x64-128, big-endian hex>"}
//   any failure                             -> {"error": "..."}
//
// Folders are imported as `ipfs add -r --hidden` does: every entry (hidden ones too), empty folders kept,
// entries fed in bytewise name order. Symlinks are refused (the importer has no symlink entries).
import { createReadStream, createWriteStream } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarWriter } from '@ipld/car/writer'
import { murmur3128 } from '@multiformats/murmur3'
import { BaseBlockstore } from 'blockstore-core/base'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// The JS importer's options that reproduce each profile (hfscraper/ipfs/profiles.py and docs/IPFS.md name the
// same settings). unixfs-v1-2025 uses the importer's own built-in IPIP-499 profile.
const PROFILES = {
  'unixfs-v1-2025': { profile: 'unixfs-v1-2025' },
  'unixfs-v0-2015': {
    cidVersion: 0, rawLeaves: false, leafType: 'file', reduceSingleLeafToSelf: true,
    chunkSize: 262144, maxChildrenPerNode: 174,
    shardSplitThresholdBytes: 262144, shardSplitStrategy: 'links-bytes'
  },
  'kubo-cidv1': {
    cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true,
    chunkSize: 262144, maxChildrenPerNode: 174,
    shardSplitThresholdBytes: 262144, shardSplitStrategy: 'links-bytes'
  }
}
const V1_2025_EXPLICIT = {
  cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true,
  chunkSize: 1048576, maxChildrenPerNode: 1024,
  shardSplitThresholdBytes: 262144, shardSplitStrategy: 'block-bytes'
}

function importerOptions (profile, overrides) {
  const base = PROFILES[profile]
  if (base == null) throw new Error(`unknown profile ${profile}`)
  let spec = { ...base }
  if (overrides != null && Object.keys(overrides).length > 0) {
    spec = { ...(base.profile != null ? V1_2025_EXPLICIT : base), ...overrides }
  }
  if (spec.profile != null) return { profile: spec.profile }
  const { chunkSize, maxChildrenPerNode, ...rest } = spec
  return { ...rest, chunker: fixedSize({ chunkSize }), layout: balanced({ maxChildrenPerNode }) }
}

// Records every block the importer writes, for a CAR (insertion order, each CID once).
class RecordingBlockstore extends BaseBlockstore {
  constructor () { super(); this.blocks = new Map() }
  put (cid, bytes) { const key = cid.toString(); if (!this.blocks.has(key)) this.blocks.set(key, { cid, bytes }); return cid }
  has (cid) { return this.blocks.has(cid.toString()) }
  get (cid) { const found = this.blocks.get(cid.toString()); if (found == null) throw new Error('not found'); return found.bytes }
}

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))

async function * folderEntries (abs, rel) {
  const names = (await readdir(abs)).sort(byteOrder)
  if (names.length === 0) yield { path: rel }
  for (const name of names) {
    const childAbs = join(abs, name)
    const childRel = `${rel}/${name}`
    const st = await lstat(childAbs)
    if (st.isSymbolicLink()) throw new Error(`${childAbs}: symlinks are not supported by the oracle`)
    if (st.isDirectory()) yield * folderEntries(childAbs, childRel)
    else if (st.isFile()) yield { path: childRel, content: createReadStream(childAbs) }
    else throw new Error(`${childAbs}: not a file or folder`)
  }
}

async function add ({ path, profile = 'unixfs-v1-2025', car, options }) {
  const opts = importerOptions(profile, options)
  const blockstore = car != null ? new RecordingBlockstore() : new BlackHoleBlockstore()
  const st = await lstat(path)
  let source
  if (st.isDirectory()) source = folderEntries(path, 'root')
  else if (st.isFile()) source = [{ path: 'root', content: createReadStream(path) }]
  else throw new Error(`${path}: not a file or folder`)
  let root
  for await (const entry of importer(source, blockstore, opts)) {
    if (entry.path === 'root') root = entry
  }
  if (root == null) throw new Error('the importer yielded no root')
  let blocks = null
  if (car != null) {
    const { writer, out } = CarWriter.create([root.cid])
    const written = pipeline(Readable.from(out), createWriteStream(car))
    for (const { cid, bytes } of blockstore.blocks.values()) await writer.put({ cid, bytes })
    await writer.close()
    await written
    blocks = blockstore.blocks.size
  }
  return { cid: root.cid.toString(), blocks }
}

async function murmur ({ hex }) {
  const digest = await murmur3128.encode(Buffer.from(hex, 'hex'))
  // The first 64 bits of murmur3-x64-128 (h1, big-endian), the part of it that the HAMT of UnixFS uses.
  return { hash: Buffer.from(digest.slice(0, 8)).toString('hex') }
}

async function answer (job) {
  try {
    if (job.op === 'murmur') return await murmur(job)
    if (job.op === 'add' || job.op == null) return await add(job)
    return { error: `unknown op ${job.op}` }
  } catch (err) {
    return { error: String(err?.message ?? err) }
  }
}

async function main (argv) {
  if (argv[0] === '--batch') {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
    for await (const line of lines) {
      if (line.trim() === '') continue
      process.stdout.write(JSON.stringify(await answer(JSON.parse(line))) + '\n')
    }
    return 0
  }
  const job = { op: 'add' }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--profile') job.profile = argv[++i]
    else if (argv[i] === '--car') job.car = argv[++i]
    else if (job.path == null) job.path = argv[i]
    else { process.stderr.write(`oracle.mjs: unexpected argument ${argv[i]}\n`); return 2 }
  }
  if (job.path == null) {
    process.stderr.write('usage: node oracle.mjs [--profile P] [--car OUT.car] PATH | --batch < jobs.jsonl\n')
    return 2
  }
  const result = await answer(job)
  if (result.error != null) { process.stderr.write(`oracle.mjs: ${result.error}\n`); return 2 }
  process.stdout.write(result.cid + '\n')
  return 0
}

process.exitCode = await main(process.argv.slice(2))
