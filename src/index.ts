export type {
  App,
  Body,
  Chunk,
  Environ,
  ErrorStream,
  FileWrapper,
  Headers,
  StartResponse,
  Write,
} from './types.js';
export { NgiError, RequestError, codes, type ErrorCode } from './errors.js';
export { defineApp, isNgiApp } from './define-app.js';
export { mount } from './mount.js';
export { serve } from './serve.js';
export { staticFiles, type StaticFilesOptions } from './static.js';
export { validator } from './validator.js';
