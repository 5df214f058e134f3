import { InMemoryEventStore } from '../../historian/adapters/memoryEventStore'
import { eventStoreContract } from '../support/eventStoreContract'

// The benchmark's baseline must behave like a real store, or the overhead ratio would compare unlike things.
eventStoreContract('in-memory event store (benchmark baseline)', async () => ({ store: new InMemoryEventStore(), close: async () => undefined }))
