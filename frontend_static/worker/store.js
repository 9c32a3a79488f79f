/** JSON values in localStorage under one prefix; falls back to memory where storage is blocked (third-party
 * iframes) or full. `openStorage` gives the Storage to use (tests pass their own). */
export class Store {
  constructor(prefix, openStorage = () => window.localStorage) {
    this.prefix = prefix;
    this.memory = new Map();
    try {
      const storage = openStorage();
      storage.setItem(`${prefix}probe`, "1");
      storage.removeItem(`${prefix}probe`);
      this.backend = storage;
    } catch (blocked) {
      this.backend = null;
    }
  }

  get(key) {
    const raw = this.backend ? this.backend.getItem(this.prefix + key) : this.memory.get(key);
    if (raw == null) return null;
    try {
      return JSON.parse(raw);
    } catch (corrupt) {
      return null;
    }
  }

  set(key, value) {
    const raw = JSON.stringify(value);
    if (this.backend) {
      try {
        this.backend.setItem(this.prefix + key, raw);
        return;
      } catch (quotaExceeded) {
        // Storage full: this session still has the value in memory and the server has the rest.
      }
    }
    this.memory.set(key, raw);
  }

  remove(key) {
    if (this.backend) this.backend.removeItem(this.prefix + key);
    this.memory.delete(key);
  }
}
