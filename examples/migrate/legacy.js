// The legacy Express app: every route of the service, /users among them.
import express from 'express';

export const users = new Map([
  ['1', { id: '1', name: 'Ada' }],
  ['2', { id: '2', name: 'Grace' }],
]);

export function legacyApp() {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/', (_req, res) => {
    res.json({ service: 'shop' });
  });
  app.get('/users', (_req, res) => {
    res.json([...users.values()]);
  });
  app.get('/users/:id', (req, res) => {
    const user = users.get(req.params.id);
    if (user === undefined) res.status(404).json({ error: 'no such user' });
    else res.json(user);
  });
  app.get('/orders', (_req, res) => {
    res.json([{ id: 'o1', user: '1' }]);
  });
  return app;
}
