/*
 * Which rule of docs/spec.md a validator message is about, so a violation the validator finds
 * while the kit runs is reported under its rule number. First match wins; the patterns are
 * the validator's own wording (src/middleware/validator.ts).
 */
const RULES: Array<[RegExp, string]> = [
  [/environ REQUEST_METHOD/, 'R3.2'],
  [/environ (SCRIPT_NAME)/, 'R3.4'],
  [/environ PATH_INFO/, 'R3.3'],
  [/environ QUERY_STRING/, 'R3.5'],
  [/environ REQUEST_URI/, 'R3.6'],
  [/environ (CONTENT_LENGTH|CONTENT_TYPE|HTTP_CONTENT)/, 'R3.7'],
  [/environ HTTP_/, 'R3.8'],
  [/environ (SERVER_|REMOTE_)/, 'R3.9'],
  [/environ (HTTPS|ngi\.url_scheme)/, 'R3.10'],
  [/environ ngi\.input/, 'R3.12'],
  [/environ ngi\.signal/, 'R3.13'],
  [/environ ngi\.file_wrapper/, 'R10.9'],
  [/environ ngi\.upgrade/, 'R10.1'],
  [/environ ngi\.early_hints/, 'R10.7'],
  [/environ ngi\.trailers/, 'R10.8'],
  [/environ/, 'R3.11'],
  [/upgrade|refuse or accept|subprotocol|WebSocket|close code/i, 'R10.2'],
  [/early hints/, 'R10.7'],
  [/trailer/i, 'R10.8'],
  [/startResponse called twice/, 'R4.6'],
  [
    /startResponse returned no write|write\(\) did not return a promise|write\(\) (called|given)/,
    'R6.5',
  ],
  [/excInfo/, 'R5.3'],
  [/status .* is not/, 'R4.1'],
  [/hop-by-hop|a Status header/, 'R4.5'],
  [/header|headers is/, 'R4.4'],
  [/Content-Length .* not digits|two different Content-Length/, 'R7.3'],
  [/longer than its Content-Length/, 'R7.1'],
  [/bytes its Content-Length declares/, 'R7.2'],
  [/came before startResponse|startResponse was never called/, 'R6.1'],
  [/close\(\)/, 'R6.4'],
  [/next\(\) called while/, 'R6.2'],
  [/body/, 'R2.2'],
];

/** The rule a validator message names, or `R2.1` (the contract as a whole) when none fits. */
export function ruleOf(message: string): string {
  for (const [pattern, rule] of RULES) if (pattern.test(message)) return rule;
  return 'R2.1';
}
