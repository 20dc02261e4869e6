/*
 * `ngi-gateway/testing`: the conformance kit. `runConformance` checks a host against
 * docs/spec.md on the wire; `runAppConformance` checks an app under ngi's reference host;
 * `validator` is the same checker both use, for your own tests.
 */
export {
  runConformance,
  kitCases,
  type ConformanceHost,
  type ConformanceOptions,
  type ConformanceReport,
  type ConformanceResult,
} from './run-conformance.js';
export {
  runAppConformance,
  defaultAppRequests,
  type AppConformanceOptions,
  type AppRequest,
} from './run-app-conformance.js';
export type { KitCase } from './_case.js';
export { validator, type ValidatorOptions } from '../middleware/validator.js';
