const RETRYING_MESSAGE = "Your work is kept in this page; we are retrying to save it. Please keep this page open.";

/** The plain message bar: retrying, errors, and nothing when all is well. */
export class StatusBar {
  constructor(node) {
    this.node = node;
    this.failing = new Set();
    this.errorText = "";
  }

  retrying(requestId) {
    this.failing.add(requestId);
    this.render();
  }

  recovered(requestId) {
    if (this.failing.delete(requestId)) this.render();
  }

  error(text) {
    this.errorText = text;
    this.render();
  }

  render() {
    const text = this.errorText || (this.failing.size ? RETRYING_MESSAGE : "");
    this.node.textContent = text;
    this.node.hidden = !text;
    this.node.classList.toggle("status-error", Boolean(this.errorText));
  }
}
