/**
 * An export of the audit scenario's tenant acme (17 records, 3 streams) in format version 1, made by the build before
 * version 2 and never edited: it proves old exports on disk still verify.
 */
export const V1_EXPORT_FILE = new URL('./fixtures/export-v1.jsonl', import.meta.url)

/** The integrity key (read as base64) the version 1 export was made under: the fixture's own, used nowhere else. */
export const V1_EXPORT_KEY = `f1x7e0c0de${'0'.repeat(54)}`
