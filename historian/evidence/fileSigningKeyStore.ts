import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { link, lstat, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { SigningKeyDirectoryError } from './evidenceErrors'
import { publicKeyX, signingKeyId, SigningKeyStatus, type EvidenceSigner, type PublishedSigningKey, type SigningKeySet, type SigningKeyStore } from './signingKeys'

/**
 * Signing keys in a private directory (ANNALIST_SIGNING_KEY_DIR), apart from the database: one PKCS#8 PEM private key
 * per key ID (`<kid>.pem`) and `state.json`, which says which key is current and which are retired. The directory must
 * be 0700 and its files 0600; anything readable by another user is refused. docs/evidence.md.
 */

/** The file that lists the keys and their status. */
export const SIGNING_KEY_STATE_FILE = 'state.json'

const KeyEntry = z.object({
  kid: z.string().regex(/^[0-9a-f]{64}$/),
  status: z.enum([SigningKeyStatus.current, SigningKeyStatus.retired]),
  createdAt: z.iso.datetime(),
  retiredAt: z.iso.datetime().optional(),
})
const State = z
  .object({ format: z.literal(1), keys: z.array(KeyEntry).min(1) })
  .refine((state) => state.keys.filter((key) => key.status === SigningKeyStatus.current).length === 1, 'exactly one key must be current')
  .refine((state) => new Set(state.keys.map((key) => key.kid)).size === state.keys.length, 'a key ID is listed twice')

/** The directory's state file: every key, oldest first, exactly one of them current. */
export type SigningKeyState = z.infer<typeof State>
type KeyEntry = z.infer<typeof KeyEntry>

const PRIVATE_DIRECTORY = 0o700
const PRIVATE_FILE = 0o600

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, '0')

/** Refuses a file or directory that any other user may read, write or enter. */
function requirePrivate(directory: string, file: string, mode: number, kind: 'directory' | 'file'): void {
  if ((mode & 0o077) === 0) return
  const what = file === directory ? 'is' : `holds ${path.basename(file)}, which is`
  throw new SigningKeyDirectoryError(directory, `${what} open to other users (mode ${octal(mode)}); the ${kind} must be ${octal(kind === 'directory' ? PRIVATE_DIRECTORY : PRIVATE_FILE)}`)
}

/** Checks that `directory` exists, is a directory (not a symlink) and is private; `missing` says what to do when it is not there. */
async function checkDirectory(directory: string, missing: string): Promise<void> {
  const stats = await lstat(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new SigningKeyDirectoryError(directory, missing)
    throw new SigningKeyDirectoryError(directory, `cannot be read (${error.code ?? error.message})`)
  })
  if (!stats.isDirectory()) throw new SigningKeyDirectoryError(directory, 'is not a directory')
  requirePrivate(directory, directory, stats.mode, 'directory')
}

/** Reads a private file of the directory, refusing it when it is missing, a symlink or open to others. */
async function readPrivateFile(directory: string, name: string): Promise<string> {
  const file = path.join(directory, name)
  const stats = await lstat(file).catch((error: NodeJS.ErrnoException) => {
    throw new SigningKeyDirectoryError(directory, error.code === 'ENOENT' ? `lacks ${name}` : `cannot read ${name} (${error.code ?? error.message})`)
  })
  if (!stats.isFile()) throw new SigningKeyDirectoryError(directory, `holds ${name}, which is not a regular file`)
  requirePrivate(directory, file, stats.mode, 'file')
  return readFile(file, 'utf8')
}

/** Writes a new private file (0600) that must not exist yet, flushed to disk. */
async function writeNewPrivateFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'wx', PRIVATE_FILE)
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** A state file's text. */
const stateText = (state: SigningKeyState) => `${JSON.stringify(state, null, 2)}\n`

/** A fresh temporary name beside the state file, for atomic replacement. */
const temporaryStateFile = (directory: string) => path.join(directory, `${SIGNING_KEY_STATE_FILE}.${randomBytes(8).toString('hex')}.tmp`)

/** Reads and validates the state file. */
async function readState(directory: string): Promise<SigningKeyState> {
  const text = await readPrivateFile(directory, SIGNING_KEY_STATE_FILE)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new SigningKeyDirectoryError(directory, `holds a ${SIGNING_KEY_STATE_FILE} that is not JSON`)
  }
  const parsed = State.safeParse(json)
  if (!parsed.success) throw new SigningKeyDirectoryError(directory, `holds a malformed ${SIGNING_KEY_STATE_FILE}: ${parsed.error.issues[0]!.message}`)
  return parsed.data
}

/** Generates a key and writes it as `<kid>.pem` (0600); returns its entry as the current key. */
async function createKey(directory: string, now: Date): Promise<KeyEntry> {
  const { privateKey } = generateKeyPairSync('ed25519')
  const kid = signingKeyId(publicKeyX(privateKey))
  await writeNewPrivateFile(path.join(directory, `${kid}.pem`), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())
  return { kid, status: SigningKeyStatus.current, createdAt: now.toISOString() }
}

/** What init and rotation report: the current key and, after a rotation, the key it retired. */
export interface SigningKeyChange {
  readonly current: KeyEntry
  readonly retired?: KeyEntry
}

/**
 * Creates the signing key directory (0700, with any missing parents 0700) and its first key, current. A directory that
 * already exists must be private and not yet hold a state file: initialising twice is refused, and of two concurrent
 * inits one wins (the state file is linked into place, which fails when it exists) and the other removes its key.
 */
export async function initSigningKeyDirectory(directory: string, now: Date = new Date()): Promise<SigningKeyChange> {
  await mkdir(directory, { recursive: true, mode: PRIVATE_DIRECTORY })
  await checkDirectory(directory, 'is missing')
  const initialised = () => new SigningKeyDirectoryError(directory, `already holds signing keys (${SIGNING_KEY_STATE_FILE}); rotate them with \`annalist keys signing rotate\``)
  if (await stat(path.join(directory, SIGNING_KEY_STATE_FILE)).then(() => true, () => false)) throw initialised()
  const current = await createKey(directory, now)
  const temporary = temporaryStateFile(directory)
  try {
    await writeNewPrivateFile(temporary, stateText({ format: 1, keys: [current] }))
    await link(temporary, path.join(directory, SIGNING_KEY_STATE_FILE))
  } catch (error) {
    await rm(path.join(directory, `${current.kid}.pem`), { force: true })
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw initialised()
    throw error
  } finally {
    await rm(temporary, { force: true })
  }
  return { current }
}

/**
 * Makes a new key current and retires the one that was (it signs no more, and stays published). The new key's file is
 * written before the state file is replaced atomically, so a crash leaves either the old state or the new one, at worst
 * with an unused key file beside it. Rotations of one directory must not run at once: the CLI holds a lock file.
 */
export async function rotateSigningKey(directory: string, now: Date = new Date()): Promise<SigningKeyChange> {
  const store = await FileSigningKeyStore.open(directory)
  const state = await store.state()
  // Every listed key must still load before the state changes, so a rotation never publishes what it cannot serve.
  await store.publicKeys()
  const current = await createKey(directory, now)
  const retiring = state.keys.find((key) => key.status === SigningKeyStatus.current)!
  const retired: KeyEntry = { ...retiring, status: SigningKeyStatus.retired, retiredAt: now.toISOString() }
  const keys = [...state.keys.map((key) => (key.kid === retiring.kid ? retired : key)), current]
  const temporary = temporaryStateFile(directory)
  await writeNewPrivateFile(temporary, stateText({ format: 1, keys }))
  await rename(temporary, path.join(directory, SIGNING_KEY_STATE_FILE))
  return { current, retired }
}

/**
 * The SigningKeyStore over a private key directory. It reads the state file on every call, so a rotation done by
 * `annalist keys signing rotate` is served at once by a running `annalist serve`; key files, which never change, are
 * read once and kept.
 */
export class FileSigningKeyStore implements SigningKeyStore {
  private readonly loaded = new Map<string, KeyObject>()

  private constructor(readonly directory: string) {}

  /** Opens the directory, refusing it when it is missing, open to other users, or holds no valid state file. */
  static async open(directory: string): Promise<FileSigningKeyStore> {
    const store = new FileSigningKeyStore(path.resolve(directory))
    await store.state()
    return store
  }

  /** The directory's state file, after checking the directory and the file are private. */
  async state(): Promise<SigningKeyState> {
    await checkDirectory(this.directory, 'is missing: create it and a first key with `annalist keys signing init`')
    return readState(this.directory)
  }

  async currentSigner(): Promise<EvidenceSigner> {
    const state = await this.state()
    const entry = state.keys.find((key) => key.status === SigningKeyStatus.current)!
    const privateKey = await this.privateKey(entry.kid)
    return { kid: entry.kid, sign: async (message) => sign(null, message, privateKey) }
  }

  async publicKeys(): Promise<SigningKeySet> {
    const state = await this.state()
    const keys = await Promise.all(state.keys.map(async (entry): Promise<PublishedSigningKey> => ({
      kty: 'OKP',
      crv: 'Ed25519',
      alg: 'EdDSA',
      use: 'sig',
      kid: entry.kid,
      x: publicKeyX(await this.privateKey(entry.kid)),
      status: entry.status,
      createdAt: entry.createdAt,
      ...(entry.retiredAt === undefined ? {} : { retiredAt: entry.retiredAt }),
    })))
    return { keys }
  }

  /** The private key `<kid>.pem`, checked to be an Ed25519 key whose ID is `kid`. */
  private async privateKey(kid: string): Promise<KeyObject> {
    const cached = this.loaded.get(kid)
    if (cached) return cached
    const name = `${kid}.pem`
    const pem = await readPrivateFile(this.directory, name)
    let key: KeyObject
    try {
      key = createPrivateKey({ key: pem, format: 'pem' })
    } catch {
      throw new SigningKeyDirectoryError(this.directory, `holds ${name}, which is not a PKCS#8 PEM private key`)
    }
    if (key.asymmetricKeyType !== 'ed25519' || signingKeyId(publicKeyX(key)) !== kid) {
      throw new SigningKeyDirectoryError(this.directory, `holds ${name}, which is not the Ed25519 key with that ID`)
    }
    this.loaded.set(kid, key)
    return key
  }
}
