// The end of an assignment: the completion code (with a Copy button), then back to the market.

/** The Copy button beside the completion code (the clipboard API needs a secure context: else copy the selection). */
function offerCopy(code) {
  const button = document.getElementById("copy-code");
  const said = document.getElementById("copy-status");
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code);
    } catch (refused) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("completion-code"));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      if (!document.execCommand("copy")) {
        said.textContent = "Select the code and copy it.";
        return;
      }
    }
    said.textContent = "Copied.";
  });
}

/** MTurk: the page itself (inside the market's iframe) posts the externalSubmit form. */
function submitToMarket(answer, bootstrap) {
  const form = document.createElement("form");
  form.method = "POST";
  form.action = answer.turk_submit_to;
  const fields = {
    assignmentId: answer.market_assignment_id || bootstrap.market_assignment_id
      || new URLSearchParams(window.location.search).get("assignmentId"),
    completion_code: answer.completion_code,
  };
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}

/** Shows the submit answer's completion code and sends the worker on: MTurk's form, or the study's URL. */
export function showCompletion(answer, bootstrap) {
  const done = document.getElementById("done");
  document.getElementById("completion-code").textContent = answer.completion_code;
  done.hidden = false;
  document.body.classList.add("finished");
  offerCopy(answer.completion_code);
  if (answer.turk_submit_to) {
    submitToMarket(answer, bootstrap);
  } else if (answer.redirect_url) {
    const link = document.getElementById("redirect-link");
    link.href = answer.redirect_url;
    link.parentElement.hidden = false;
    setTimeout(() => window.location.assign(answer.redirect_url), 1500);
  }
}
