/** Thrown when a signed evidence document does not verify; the subclasses say why, each in one line. */
export class EvidenceVerificationError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'EvidenceVerificationError'
  }
}

/** Thrown when a document is not signed evidence at all: a missing or malformed field, named in the message. */
export class MalformedEvidenceError extends EvidenceVerificationError {
  constructor(readonly field: string) {
    super(`not a signed evidence document: ${field} is missing or malformed`)
    this.name = 'MalformedEvidenceError'
  }
}

/** Thrown when a document is evidence of another kind than the verifier expects. */
export class EvidenceKindMismatchError extends EvidenceVerificationError {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`evidence of kind ${JSON.stringify(actual.slice(0, 64))} where ${JSON.stringify(expected)} was expected`)
    this.name = 'EvidenceKindMismatchError'
  }
}

/** Thrown when a document names a signing key that is not among the published keys given to the verifier. */
export class UnknownSigningKeyError extends EvidenceVerificationError {
  constructor(readonly kid: string) {
    super(`signed with key ${JSON.stringify(kid.slice(0, 64))}, which is not among the published signing keys`)
    this.name = 'UnknownSigningKeyError'
  }
}

/** Thrown when the signature does not verify under its key: the kind, payload or signature changed after signing. */
export class EvidenceSignatureError extends EvidenceVerificationError {
  constructor(readonly kid: string) {
    super(`the signature does not verify under key ${kid}: the document's kind, payload or signature was altered after signing`)
    this.name = 'EvidenceSignatureError'
  }
}

/** Thrown when the signing key directory is missing, open to other users, or not in the state it should be. */
export class SigningKeyDirectoryError extends Error {
  constructor(
    readonly directory: string,
    readonly problem: string,
  ) {
    super(`${directory} ${problem}`)
    this.name = 'SigningKeyDirectoryError'
  }
}
