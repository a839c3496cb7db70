/**
 * Members are split into a fixed number of partitions, each owned by one engine at a time
 * (engine/ingest/Leases.ts). The split must never change for a given count, so it is a plain
 * FNV-1a over the member id's UTF-16 code units: fast, and the same in every version.
 */
export const partitionOf = (memberId: string, count: number): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < memberId.length; i++) {
    hash ^= memberId.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % count
}

/** A message that names no member (refused before its member is known) goes by its stream sequence. */
export const partitionOfSequence = (seq: number, count: number): number => seq % count
