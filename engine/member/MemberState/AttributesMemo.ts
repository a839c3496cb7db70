/**
 * The masked attributes' JSON of a member's profile row, kept by attributes object while it is
 * unchanged (engine/member/MemberState/Profile.ts), so that a member's row does not mask and
 * serialise the same attributes again at every write. The one writer of attributes (`applyAttributes`,
 * MemberState/Facts.ts) forgets it when it changes them.
 *
 * One string per member. It was the keys and values the JSON was made from, kept to compare at each
 * write: an object, two lists and their backing stores per member, 8% of every object the collector
 * marked in the engine's heap in bench:ingest, where a full collection's marking holds the engine's
 * thread for half a second (BENCHMARKS.md, 2026-12-07, late afternoon).
 */

const memo = new WeakMap<object, string>()

/** The JSON remembered for these attributes, if they have not changed since. */
export const rememberedAttributesJson = (attributes: object): string | undefined => memo.get(attributes)

export const rememberAttributesJson = (attributes: object, json: string): void => {
  memo.set(attributes, json)
}

/** The attributes changed: their JSON is made again at the next row. */
export const attributesChanged = (attributes: object): void => {
  memo.delete(attributes)
}
