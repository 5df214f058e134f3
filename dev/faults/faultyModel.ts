import type { LanguageModelV4, LanguageModelV4CallOptions, LanguageModelV4GenerateResult } from '@ai-sdk/provider'
import { APICallError } from '@ai-sdk/provider'
import { ANNALIST_PROVIDER_OPTIONS_KEY, AnnalistCallOptions, type ModelRole } from '../../activities/models/modelClient'
import { hangUntilAborted } from '../../activities/tools/tool'
import { matchFault, type FaultPlan } from './faultPlan'

/** The error a provider answers for a prompt beyond the model's context window (HTTP 400, context_length_exceeded). */
export function contextLengthError(modelId: string, options: LanguageModelV4CallOptions): APICallError {
  const message = `This model's maximum context length is 8192 tokens, but the request has more (${modelId}, injected fault).`
  const body = { error: { message, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } }
  return new APICallError({
    message,
    url: `injected://${modelId}/chat/completions`,
    requestBodyValues: { model: modelId, messages: options.prompt },
    statusCode: 400,
    responseBody: JSON.stringify(body),
    isRetryable: false,
    data: body,
  })
}

/** A reply spoilt as a confused model spoils it: cut in half (not valid JSON), or empty for synthesis, yet "stopped" normally. */
function malformedReply(result: LanguageModelV4GenerateResult, role: ModelRole): LanguageModelV4GenerateResult {
  if (role === 'synthesis') return { ...result, content: [] }
  return { ...result, content: result.content.map((part) => (part.type === 'text' ? { ...part, text: part.text.slice(0, Math.floor(part.text.length / 2)) } : part)) }
}

/**
 * A wrapper (modelsFromConfig's `wrapModel`) giving every role's model the plan's model faults, on the role targets
 * (`routing`, `planning`, `synthesis`), for the call's tenant, task and attempt: `timeout` hangs until the call is
 * aborted, `context_length` is refused as a provider refuses a prompt too long, `malformed` spoils the model's reply.
 */
export function withModelFaults(plan: FaultPlan): (model: LanguageModelV4, role: ModelRole) => LanguageModelV4 {
  return (model) => ({
    specificationVersion: model.specificationVersion,
    provider: model.provider,
    modelId: model.modelId,
    supportedUrls: model.supportedUrls,
    doStream: (options) => model.doStream(options),
    doGenerate: async (options) => {
      const call = AnnalistCallOptions.parse(options.providerOptions?.[ANNALIST_PROVIDER_OPTIONS_KEY])
      const fault = matchFault(plan, { target: call.role, tenantId: call.tenantId, taskId: call.taskId, attempt: call.attempt })
      if (fault?.kind === 'timeout') return hangUntilAborted(options.abortSignal, `${model.modelId} ${call.role} model call`)
      if (fault?.kind === 'context_length') throw contextLengthError(model.modelId, options)
      const result = await model.doGenerate(options)
      return fault?.kind === 'malformed' ? malformedReply(result, call.role) : result
    },
  })
}
