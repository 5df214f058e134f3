export { agentPipeline, currentStepQuery } from './agentPipeline.workflow'
