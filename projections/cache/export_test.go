package cache

// waitL1 waits until L1 has applied pending writes (ristretto sets are
// asynchronous), so tests can assert on what a Set did.
func (c *Cache) waitL1() { c.l1.Wait() }

// WaitL1 is waitL1 for the external test package.
var WaitL1 = (*Cache).waitL1
