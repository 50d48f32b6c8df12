import t from 'tap';
import { Errors } from '../src/errors.js';
t.test('x', async (t) => { const e = Errors.BAD_JSON('x'); t.equal(e.statusCode, 400); });
