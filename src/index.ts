export type {
  App,
  Body,
  Chunk,
  EarlyHints,
  Environ,
  ErrorStream,
  Headers,
  ResponseTrailers,
  StartResponse,
  Upgrade,
  WebSocketClose,
  WebSocketMessage,
  WebSocketSession,
  Write,
} from './core/types.js';
export { NgiError, RequestError, codes, createError, type ErrorCode } from './core/errors.js';
export { defineApp, isNgiApp } from './core/define-app.js';
export {
  LIFESPAN_KEY,
  lifespanOf,
  shutdownApp,
  startupApp,
  withLifespan,
  type Lifespan,
  type LifespanState,
} from './core/lifespan.js';
export { mount } from './middleware/mount.js';
export {
  serve,
  type ListenAddress,
  type ListenSpec,
  type RecycleReason,
  type ServeOptions,
  type ServerHandle,
} from './server/serve.js';
export { staticFiles, type StaticFilesOptions } from './middleware/static.js';
export { validator, type ValidatorOptions } from './middleware/validator.js';
