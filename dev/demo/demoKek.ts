import { generateKek, KEK_FILE_VARIABLE, KekRing } from '../../historian/keys/keyEncryptionKeys'
import { demoKeyFile, type DemoKeyFile } from './demoKeyFile'

/**
 * The key-encryption key the demo uses when none is configured: `<dataDir>/kek.key`, version 1, created once (mode
 * 0600 in a 0700 directory, as ANNALIST_KEK_FILE requires) and read again by later runs, so every demo run's wrapped
 * keys stay readable.
 */
export function demoKek(dataDir: string): DemoKeyFile<KekRing> {
  return demoKeyFile(dataDir, 'kek.key', 'key-encryption key', () => `1:${generateKek()}`, (text) => KekRing.fromText(text, KEK_FILE_VARIABLE))
}
