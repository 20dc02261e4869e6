// An Express hello app, served by `ngi serve` (fromExpress) and by its own listen.
import express from 'express';

const app = express();
app.get('/', (_req, res) => {
  res.type('text/plain').send('Hello, World!');
});
export default app;
