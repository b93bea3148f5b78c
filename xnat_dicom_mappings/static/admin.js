/* The DICOM mappings administration page.
 *
 * Plain JavaScript with no dependencies. Every stored value reaches the page
 * through textContent or an attribute set by the DOM, never through HTML
 * parsing, so a rule or file cannot inject markup.
 */
(function () {
  "use strict";

  var RULE_KEYS = ["scope", "scopeObjectId", "schemaElement", "fieldName", "fieldType",
    "dicomTag", "conflictPolicy"];

  var apiUrl = metaContent("dicom-mappings-api");
  var tagInfoUrl = metaContent("dicom-mappings-tag-info");
  var csrfToken = metaContent("csrf-token");
  var csrfHeader = metaContent("csrf-header") || "X-CSRFToken";

  var state = {
    rules: [],
    total: null,
    sortKey: "id",
    sortDirection: "ascending",
    editingId: null,
    editingEtag: null,
    pendingDelete: null,
    previewFiles: [],
    tagTimer: null,
    tagRequest: null
  };

  function metaContent(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    return node ? node.getAttribute("content") : "";
  }

  function byId(id) {
    return document.getElementById(id);
  }

  /* Create an element; string children become text nodes. */
  function el(tag, attributes) {
    var node = document.createElement(tag);
    var name;
    for (name in attributes || {}) {
      if (Object.prototype.hasOwnProperty.call(attributes, name)) {
        if (name === "text") {
          node.textContent = attributes[name];
        } else if (name === "className") {
          node.className = attributes[name];
        } else {
          node.setAttribute(name, attributes[name]);
        }
      }
    }
    for (var i = 2; i < arguments.length; i += 1) {
      var child = arguments[i];
      if (child === null || child === undefined) {
        continue;
      }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function displayValue(value) {
    if (value === null || value === undefined || value === "") {
      return "\u2014";
    }
    if (typeof value === "object") {
      return JSON.stringify(value);
    }
    return String(value);
  }

  /* ---- HTTP ------------------------------------------------------------ */

  function ApiError(status, body, response) {
    this.status = status;
    this.body = body || {};
    this.response = response;
    this.message = (body && body.message) || ("The request failed with HTTP " + status + ".");
  }

  /* Send a request to the JSON API; resolve with {body, response} or reject with ApiError. */
  function request(method, path, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    var body;

    if (method !== "GET" && method !== "HEAD") {
      headers[csrfHeader] = csrfToken;
    }
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.text !== undefined) {
      headers["Content-Type"] = "application/json";
      body = options.text;
    } else if (options.formData !== undefined) {
      body = options.formData;
    }
    Object.keys(options.headers || {}).forEach(function (name) {
      headers[name] = options.headers[name];
    });

    var url = path.charAt(0) === "/" ? path : apiUrl + (path ? "/" + path : "");
    return fetch(url, {
      method: method,
      headers: headers,
      body: body,
      credentials: "same-origin"
    }).then(function (response) {
      return response.text().then(function (text) {
        var parsed = null;
        if (text) {
          try {
            parsed = JSON.parse(text);
          } catch (ignored) {
            parsed = { message: text.slice(0, 300) };
          }
        }
        if (!response.ok) {
          throw new ApiError(response.status, parsed, response);
        }
        return { body: parsed, response: response };
      });
    }, function (error) {
      throw new ApiError(0, { message: "The server could not be reached: " + error.message });
    });
  }

  /* ---- Status line -------------------------------------------------- */

  function showStatus(text, kind) {
    var status = byId("status");
    status.className = "status status-" + (kind || "info");
    status.textContent = text;
    status.hidden = false;
  }

  function warningsOf(result) {
    var warnings = [];
    var body = result && result.body;
    if (body && Array.isArray(body.warnings)) {
      body.warnings.forEach(function (warning) {
        warnings.push(typeof warning === "string" ? warning : (warning.message || JSON.stringify(warning)));
      });
    }
    return warnings;
  }

  /* ---- Rules table ------------------------------------------------------ */

  function filterQuery() {
    var form = byId("filters");
    var params = new URLSearchParams();
    ["scope", "project", "schemaElement", "fieldName", "dicomTag"].forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) {
        params.set(name, value);
      }
    });
    return params;
  }

  function loadRules() {
    var params = filterQuery();
    var query = params.toString();
    var filtered = request("GET", query ? "?" + query : "");
    // One rule per page is enough to read the number of every rule from X-Total-Count.
    var everything = query ? request("GET", "?pageSize=1") : null;

    return Promise.all([filtered, everything]).then(function (results) {
      state.rules = Array.isArray(results[0].body) ? results[0].body : [];
      state.total = results[1] ? totalCount(results[1]) : state.rules.length;
      renderRules();
    }).catch(function (error) {
      state.rules = [];
      state.total = null;
      renderRules();
      if (error.status === 400) {
        showStatus("Filter not applied: " + error.message, "error");
      } else {
        showStatus("Could not load the rules: " + error.message, "error");
      }
    });
  }

  function totalCount(result) {
    var header = result.response.headers.get("X-Total-Count");
    var total = parseInt(header, 10);
    return isNaN(total) ? null : total;
  }

  function compareRules(a, b) {
    var key = state.sortKey;
    var left = a[key];
    var right = b[key];
    var order;
    if (typeof left === "number" && typeof right === "number") {
      order = left - right;
    } else {
      order = String(left === null || left === undefined ? "" : left)
        .localeCompare(String(right === null || right === undefined ? "" : right), undefined,
          { numeric: true, sensitivity: "base" });
    }
    if (order === 0) {
      order = (a.id || 0) - (b.id || 0);
    }
    return state.sortDirection === "ascending" ? order : -order;
  }

  function renderRules() {
    var body = byId("rules-body");
    var rules = state.rules.slice().sort(compareRules);
    clear(body);

    rules.forEach(function (rule) {
      body.appendChild(ruleRow(rule));
    });
    if (rules.length === 0) {
      body.appendChild(el("tr", { className: "empty" },
        el("td", { colspan: "9", text: "No rules match." })));
    }

    renderCount(rules);
    renderSortState();
  }

  function ruleRow(rule) {
    var label = "rule " + rule.id + " (" + rule.fieldName + ")";
    var cells = [
      ["ID", rule.id],
      ["Scope", rule.scope],
      ["Project", rule.scopeObjectId],
      ["Schema element", rule.schemaElement],
      ["Field", rule.fieldName],
      ["Type", rule.fieldType],
      ["DICOM tag", rule.dicomTag],
      ["Conflicts", rule.conflictPolicy]
    ];
    var row = el("tr", { "data-rule-id": String(rule.id) });
    cells.forEach(function (cell) {
      var td = el("td", { "data-label": cell[0], text: displayValue(cell[1]) });
      if (cell[0] === "DICOM tag") {
        td.className = "mono";
      }
      row.appendChild(td);
    });

    var actions = el("td", { className: "actions", "data-label": "Actions" },
      el("button", { type: "button", className: "button small", "data-action": "edit",
        "aria-label": "Edit " + label, text: "Edit" }),
      el("button", { type: "button", className: "button small", "data-action": "history",
        "aria-label": "History of " + label, text: "History" }),
      el("button", { type: "button", className: "button small danger", "data-action": "delete",
        "aria-label": "Delete " + label, text: "Delete" }));
    row.appendChild(actions);
    return row;
  }

  function renderCount(rules) {
    var site = rules.filter(function (rule) { return rule.scope === "Site"; }).length;
    var text = rules.length + (rules.length === 1 ? " rule" : " rules");
    if (state.total !== null && state.total !== rules.length) {
      text += " of " + state.total;
    }
    text += " shown: " + site + " site, " + (rules.length - site) + " project.";
    byId("rule-count").textContent = text;
  }

  function renderSortState() {
    var buttons = document.querySelectorAll("#rules-table .sort");
    Array.prototype.forEach.call(buttons, function (button) {
      var header = button.parentNode;
      header.setAttribute("aria-sort",
        button.getAttribute("data-key") === state.sortKey ? state.sortDirection : "none");
    });
  }

  function onSortClick(event) {
    var button = event.target.closest(".sort");
    if (!button) {
      return;
    }
    var key = button.getAttribute("data-key");
    if (state.sortKey === key) {
      state.sortDirection = state.sortDirection === "ascending" ? "descending" : "ascending";
    } else {
      state.sortKey = key;
      state.sortDirection = "ascending";
    }
    renderRules();
  }

  function findRule(id) {
    for (var i = 0; i < state.rules.length; i += 1) {
      if (String(state.rules[i].id) === String(id)) {
        return state.rules[i];
      }
    }
    return null;
  }

  function onRowAction(event) {
    var button = event.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    var id = button.closest("tr").getAttribute("data-rule-id");
    var action = button.getAttribute("data-action");
    if (action === "edit") {
      openEditor(id);
    } else if (action === "history") {
      showHistory(id);
    } else if (action === "delete") {
      confirmDelete(id, button);
    }
  }

  /* ---- Editor ------------------------------------------------------------ */

  function ruleForm() {
    return byId("rule-form");
  }

  function clearErrors() {
    var form = ruleForm();
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (node) {
      node.textContent = "";
      node.hidden = true;
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (node) {
      node.removeAttribute("aria-invalid");
    });
    byId("form-error").hidden = true;
    byId("form-warnings").hidden = true;
  }

  function fillForm(rule) {
    var form = ruleForm();
    RULE_KEYS.forEach(function (key) {
      var control = form.elements[key];
      var value = rule[key] === null || rule[key] === undefined ? "" : String(rule[key]);
      if (control.tagName === "SELECT" && value &&
          !Array.prototype.some.call(control.options, function (o) { return o.value === value; })) {
        control.appendChild(el("option", { value: value, text: value }));
      }
      control.value = value;
    });
    syncProjectControl();
    describeTag();
  }

  function openEditor(id) {
    var editor = byId("editor");
    clearErrors();

    if (id === null) {
      state.editingId = null;
      state.editingEtag = null;
      fillForm({ scope: "Site", fieldType: "string", conflictPolicy: "unique" });
      byId("editor-title").textContent = "New rule";
      editor.hidden = false;
      ruleForm().elements.scope.focus();
      return Promise.resolve();
    }

    return request("GET", encodeURIComponent(id)).then(function (result) {
      state.editingId = result.body.id;
      state.editingEtag = result.response.headers.get("ETag");
      fillForm(result.body);
      byId("editor-title").textContent = "Edit rule " + result.body.id;
      editor.hidden = false;
      ruleForm().elements.scope.focus();
    }).catch(function (error) {
      showStatus("Could not open rule " + id + ": " + error.message, "error");
      if (error.status === 404) {
        loadRules();
      }
    });
  }

  function closeEditor() {
    state.editingId = null;
    state.editingEtag = null;
    byId("editor").hidden = true;
    clearErrors();
    byId("new-rule").focus();
  }

  function syncProjectControl() {
    var form = ruleForm();
    var isProject = form.elements.scope.value === "Project";
    var project = form.elements.scopeObjectId;
    project.disabled = !isProject;
    if (!isProject) {
      project.value = "";
    }
  }

  /* The rule as the form shows it, in the API's JSON keys. */
  function formRule() {
    var form = ruleForm();
    var rule = {};
    RULE_KEYS.forEach(function (key) {
      rule[key] = form.elements[key].value.trim();
    });
    if (rule.scope !== "Project") {
      rule.scopeObjectId = null;
    }
    if (state.editingId !== null) {
      rule.id = state.editingId;
    }
    return rule;
  }

  function showFieldErrors(error) {
    var form = ruleForm();
    var errors = error.body && error.body.errors;
    var unplaced = [];
    var firstInvalid = null;

    Object.keys(errors || {}).forEach(function (field) {
      var messages = errors[field];
      var text = Array.isArray(messages) ? messages.join(" ") : displayValue(messages);
      var slot = byId("error-" + field);
      var control = form.elements[field];
      if (slot && control) {
        slot.textContent = text;
        slot.hidden = false;
        control.setAttribute("aria-invalid", "true");
        firstInvalid = firstInvalid || control;
      } else {
        unplaced.push(field + ": " + text);
      }
    });

    var formError = byId("form-error");
    var summary = error.message;
    if (unplaced.length) {
      summary += " " + unplaced.join(" ");
    }
    formError.textContent = summary;
    formError.hidden = false;
    (firstInvalid || formError).focus();
  }

  function saveRule(event) {
    event.preventDefault();
    clearErrors();
    var rule = formRule();
    var saving;

    if (state.editingId === null) {
      delete rule.id;
      saving = request("POST", "", { json: rule });
    } else {
      var headers = {};
      if (state.editingEtag) {
        headers["If-Match"] = state.editingEtag;
      }
      saving = request("PUT", encodeURIComponent(state.editingId), { json: rule, headers: headers });
    }

    byId("save-rule").disabled = true;
    return saving.then(function (result) {
      var saved = result.body || {};
      var warnings = warningsOf(result);
      var verb = state.editingId === null ? "Created" : "Saved";
      closeEditor();
      showStatus(verb + " rule " + saved.id + " (" + saved.fieldName + ")." +
        (warnings.length ? " Warning: " + warnings.join(" ") : ""), warnings.length ? "warning" : "success");
      return loadRules();
    }).catch(function (error) {
      if (error.status === 400 || error.status === 422) {
        showFieldErrors(error);
      } else if (error.status === 412) {
        error.message = "Someone else changed this rule after you opened it. " +
          "Cancel and open it again to see their change.";
        showFieldErrors(error);
      } else {
        showFieldErrors(error);
      }
    }).then(function () {
      byId("save-rule").disabled = false;
    });
  }

  function describeTag() {
    var input = ruleForm().elements.dicomTag;
    var output = byId("tag-info");
    var text = input.value.trim();

    if (state.tagRequest) {
      state.tagRequest.abort();
      state.tagRequest = null;
    }
    if (!text) {
      output.textContent = "";
      output.className = "tag-info";
      return;
    }

    var controller = new AbortController();
    state.tagRequest = controller;
    fetch(tagInfoUrl + "?tag=" + encodeURIComponent(text), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      signal: controller.signal
    }).then(function (response) {
      return response.json().then(function (body) {
        if (input.value.trim() !== text) {
          return;
        }
        if (response.ok) {
          var parts = [body.canonical];
          if (body.keyword) {
            parts.push(body.keyword);
          }
          if (body.name && body.name !== body.keyword) {
            parts.push(body.name);
          }
          if (body.vr) {
            parts.push("VR " + body.vr);
          }
          if (body.vm) {
            parts.push("VM " + body.vm);
          }
          output.textContent = parts.join(" \u00b7 ");
          output.className = "tag-info tag-info-ok";
        } else {
          output.textContent = body.message || "Not a valid tag.";
          output.className = "tag-info tag-info-error";
        }
      });
    }).catch(function (error) {
      if (error.name !== "AbortError") {
        output.textContent = "Could not look up the tag: " + error.message;
        output.className = "tag-info tag-info-error";
      }
    });
  }

  function onTagInput() {
    window.clearTimeout(state.tagTimer);
    state.tagTimer = window.setTimeout(describeTag, 200);
  }

  /* ---- Delete ------------------------------------------------------------ */

  function confirmDelete(id, opener) {
    var rule = findRule(id) || { id: id };
    var dialog = byId("delete-dialog");
    state.pendingDelete = { id: id, opener: opener };
    byId("delete-text").textContent = "Rule " + rule.id + " copies " + displayValue(rule.dicomTag) +
      " into " + displayValue(rule.fieldName) + " of " + displayValue(rule.schemaElement) +
      (rule.scope === "Project" ? " in project " + rule.scopeObjectId : " for every project") +
      ". Deleting it cannot be undone, but its history is kept.";
    dialog.returnValue = "";
    dialog.showModal();
  }

  function onDeleteDialogClose() {
    var dialog = byId("delete-dialog");
    var pending = state.pendingDelete;
    state.pendingDelete = null;
    if (!pending) {
      return;
    }
    if (dialog.returnValue !== "delete") {
      if (pending.opener && document.body.contains(pending.opener)) {
        pending.opener.focus();
      }
      return;
    }

    request("DELETE", encodeURIComponent(pending.id)).then(function () {
      showStatus("Deleted rule " + pending.id + ".", "success");
      if (String(state.editingId) === String(pending.id)) {
        closeEditor();
      }
      return loadRules();
    }).catch(function (error) {
      showStatus("Could not delete rule " + pending.id + ": " + error.message, "error");
      return loadRules();
    }).then(function () {
      byId("new-rule").focus();
    });
  }

  /* ---- History ------------------------------------------------------------ */

  /* Show an ISO 8601 timestamp to the second, keeping its UTC offset. */
  function formatTimestamp(value) {
    return displayValue(value).replace("T", " ").replace(/\.\d+/, "");
  }

  function changedKeys(before, after) {
    var keys = [];
    var seen = {};
    [before || {}, after || {}].forEach(function (rule) {
      Object.keys(rule).forEach(function (key) {
        if (!seen[key]) {
          seen[key] = true;
          keys.push(key);
        }
      });
    });
    return keys.filter(function (key) {
      return displayValue((before || {})[key]) !== displayValue((after || {})[key]);
    });
  }

  function changeList(entry) {
    var list = el("ul", { className: "changes" });
    var before = entry.before;
    var after = entry.after;
    changedKeys(before, after).forEach(function (key) {
      var item = el("li", null, el("span", { className: "change-key", text: key + ": " }));
      if (before && after) {
        item.appendChild(el("del", { text: displayValue(before[key]) }));
        item.appendChild(document.createTextNode(" \u2192 "));
        item.appendChild(el("ins", { text: displayValue(after[key]) }));
      } else {
        item.appendChild(document.createTextNode(displayValue((after || before)[key])));
      }
      list.appendChild(item);
    });
    if (!list.firstChild) {
      list.appendChild(el("li", { text: "No change to the rule's keys." }));
    }
    return list;
  }

  function showHistory(id) {
    var dialog = byId("history-dialog");
    var body = byId("history-body");
    var path = id === null ? "history" : encodeURIComponent(id) + "/history";
    byId("history-title").textContent = id === null ? "History of all rules" : "History of rule " + id;
    clear(body);
    body.appendChild(el("p", { text: "Loading\u2026" }));
    dialog.showModal();

    request("GET", path).then(function (result) {
      var entries = Array.isArray(result.body) ? result.body : (result.body && result.body.history) || [];
      clear(body);
      if (!entries.length) {
        body.appendChild(el("p", { text: "No changes recorded." }));
        return;
      }
      var table = el("table", { className: "history-table" },
        el("caption", { className: "visually-hidden", text: "Changes to the rules" }),
        el("thead", null, el("tr", null,
          el("th", { scope: "col", text: "When" }),
          el("th", { scope: "col", text: "Who" }),
          el("th", { scope: "col", text: "Action" }),
          el("th", { scope: "col", text: "Rule" }),
          el("th", { scope: "col", text: "Changes" }))));
      var tbody = el("tbody");
      entries.forEach(function (entry) {
        var rule = entry.after || entry.before || {};
        tbody.appendChild(el("tr", null,
          el("td", { "data-label": "When", text: formatTimestamp(entry.when || entry.timestamp) }),
          el("td", { "data-label": "Who", text: displayValue(entry.who || entry.user) }),
          el("td", { "data-label": "Action", text: displayValue(entry.action) }),
          el("td", { "data-label": "Rule", text: displayValue(entry.ruleId || rule.id) }),
          el("td", { "data-label": "Changes" }, changeList(entry))));
      });
      table.appendChild(tbody);
      body.appendChild(table);
    }).catch(function (error) {
      clear(body);
      body.appendChild(el("p", { className: "status status-error", text: "Could not load the history: " + error.message }));
    });
  }

  /* ---- Preview ------------------------------------------------------------ */

  function setPreviewFiles(files) {
    state.previewFiles = Array.prototype.slice.call(files || []);
    var names = state.previewFiles.map(function (file) { return file.name; });
    byId("preview-file-list").textContent = names.length
      ? names.length + (names.length === 1 ? " file: " : " files: ") + names.join(", ")
      : "No files chosen.";
  }

  function onDrop(event) {
    event.preventDefault();
    byId("drop-zone").classList.remove("drag-over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      setPreviewFiles(event.dataTransfer.files);
    }
  }

  function onDragOver(event) {
    event.preventDefault();
    byId("drop-zone").classList.add("drag-over");
  }

  function onDragLeave() {
    byId("drop-zone").classList.remove("drag-over");
  }

  function candidateRules() {
    if (byId("editor").hidden || !byId("preview-include-editor").checked) {
      return [];
    }
    var rule = formRule();
    if (!rule.fieldName || !rule.dicomTag || !rule.schemaElement) {
      return [];
    }
    return [rule];
  }

  function runPreview(event) {
    if (event) {
      event.preventDefault();
    }
    var results = byId("preview-results");
    if (!state.previewFiles.length) {
      clear(results);
      results.appendChild(el("p", { className: "status status-error",
        text: "Choose or drop at least one DICOM file or zip first." }));
      byId("preview-files").focus();
      return;
    }

    var form = byId("preview-form");
    var data = new FormData();
    state.previewFiles.forEach(function (file) {
      data.append("files", file, file.name);
    });
    if (form.elements.project.value.trim()) {
      data.append("project", form.elements.project.value.trim());
    }
    if (form.elements.sessionType.value) {
      data.append("sessionType", form.elements.sessionType.value);
    }
    var candidates = candidateRules();
    if (candidates.length) {
      data.append("rules", JSON.stringify(candidates));
    }

    clear(results);
    results.appendChild(el("p", { text: "Reading the files\u2026" }));
    byId("run-preview").disabled = true;

    request("POST", "preview", { formData: data }).then(function (result) {
      renderPreview(result.body || {}, candidates);
    }).catch(function (error) {
      clear(results);
      var text = "Preview failed: " + error.message;
      var errors = error.body && error.body.errors;
      if (errors) {
        Object.keys(errors).forEach(function (field) {
          text += " " + field + ": " + [].concat(errors[field]).join(" ");
        });
      }
      results.appendChild(el("p", { className: "status status-error", text: text }));
    }).then(function () {
      byId("run-preview").disabled = false;
    });
  }

  function valueTable(caption, rows, candidateNames) {
    var table = el("table", { className: "value-table" },
      el("caption", { text: caption }),
      el("thead", null, el("tr", null,
        el("th", { scope: "col", text: "Field" }),
        el("th", { scope: "col", text: "Value" }))));
    var tbody = el("tbody");
    var names = Object.keys(rows || {}).sort();
    names.forEach(function (name) {
      var fieldCell = el("th", { scope: "row", "data-label": "Field" }, name);
      if (candidateNames[name]) {
        fieldCell.appendChild(el("span", { className: "badge", text: "editor" }));
      }
      tbody.appendChild(el("tr", null, fieldCell,
        el("td", { "data-label": "Value", text: displayValue(rows[name]) })));
    });
    if (!names.length) {
      tbody.appendChild(el("tr", null, el("td", { colspan: "2", text: "No values extracted." })));
    }
    table.appendChild(tbody);
    return table;
  }

  function problemTable(problems) {
    var table = el("table", { className: "problem-table" },
      el("caption", { text: "Problems" }),
      el("thead", null, el("tr", null,
        el("th", { scope: "col", text: "Level" }),
        el("th", { scope: "col", text: "Kind" }),
        el("th", { scope: "col", text: "Scan" }),
        el("th", { scope: "col", text: "Field" }),
        el("th", { scope: "col", text: "Tag" }),
        el("th", { scope: "col", text: "Detail" }))));
    var tbody = el("tbody");
    problems.forEach(function (problem) {
      tbody.appendChild(el("tr", { className: "problem-" + displayValue(problem.level) },
        el("td", { "data-label": "Level", text: displayValue(problem.level) }),
        el("td", { "data-label": "Kind", text: displayValue(problem.kind) }),
        el("td", { "data-label": "Scan", text: displayValue(problem.scanId) }),
        el("td", { "data-label": "Field", text: displayValue(problem.fieldName) }),
        el("td", { "data-label": "Tag", className: "mono", text: displayValue(problem.dicomTag) }),
        el("td", { "data-label": "Detail", text: displayValue(problem.detail) +
          (problem.values && problem.values.length ? " Values: " + displayValue(problem.values) : "") })));
    });
    table.appendChild(tbody);
    return table;
  }

  function sessionSummary(session, index) {
    var parts = [];
    var label = session.sessionType || session.xsiType || "session";
    ["project", "studyInstanceUid", "studyInstanceUID", "sessionId"].forEach(function (key) {
      if (session[key]) {
        parts.push(key + " " + session[key]);
      }
    });
    return "Session " + (index + 1) + ": " + label + (parts.length ? " (" + parts.join(", ") + ")" : "");
  }

  function renderPreview(body, candidates) {
    var results = byId("preview-results");
    var sessions = Array.isArray(body.sessions) ? body.sessions : [];
    var unreadable = Array.isArray(body.unreadable) ? body.unreadable : [];
    var candidateNames = {};
    candidates.forEach(function (rule) { candidateNames[rule.fieldName] = true; });
    clear(results);

    warningsOf({ body: body }).forEach(function (warning) {
      results.appendChild(el("p", { className: "status status-warning", text: warning }));
    });
    if (!sessions.length) {
      results.appendChild(el("p", { text: "No DICOM session was found in these files." }));
    }

    sessions.forEach(function (session, index) {
      var article = el("article", { className: "preview-session" },
        el("h3", { text: sessionSummary(session, index) }));
      article.appendChild(valueTable("Session fields", session.fields, candidateNames));

      (session.scans || []).forEach(function (scan) {
        var caption = "Scan " + displayValue(scan.id) +
          (scan.xsiType ? " (" + scan.xsiType + ")" : "") +
          (scan.seriesDescription ? ": " + scan.seriesDescription : "");
        article.appendChild(valueTable(caption, scan.parameters, candidateNames));
      });

      var problems = session.problems || [];
      if (problems.length) {
        article.appendChild(problemTable(problems));
      } else {
        article.appendChild(el("p", { className: "no-problems", text: "No problems." }));
      }
      results.appendChild(article);
    });

    if (unreadable.length) {
      var list = el("ul", { className: "unreadable" });
      unreadable.forEach(function (item) {
        list.appendChild(el("li", null, el("span", { className: "mono", text: displayValue(item.path) }),
          ": " + displayValue(item.reason)));
      });
      results.appendChild(el("h3", { text: "Files that could not be read" }));
      results.appendChild(list);
    }
  }

  /* ---- Import ------------------------------------------------------------ */

  function summariseRule(item) {
    if (typeof item === "number" || typeof item === "string") {
      return "rule " + item;
    }
    if (!item || typeof item !== "object") {
      return displayValue(item);
    }
    var rule = item.after || item.rule || item;
    var id = item.id || rule.id;
    if (!rule.fieldName) {
      return JSON.stringify(item);
    }
    return (id ? "rule " + id + ": " : "") + rule.fieldName + " \u2190 " + displayValue(rule.dicomTag) +
      " on " + displayValue(rule.schemaElement) +
      (rule.scope === "Project" ? " in project " + rule.scopeObjectId : " (site)");
  }

  var IMPORT_GROUPS = [
    ["create", "New rules"],
    ["update", "Changed rules"],
    ["delete", "Deleted rules"],
    ["unchanged", "Unchanged rules"]
  ];

  function renderImport(body, dryRun) {
    var results = byId("import-results");
    var summary = body.summary || {};
    var counts = IMPORT_GROUPS.map(function (group) {
      var items = body[group[0]] || [];
      return (summary[group[0]] !== undefined ? summary[group[0]] : items.length) + " " + group[0];
    });
    clear(results);
    results.appendChild(el("p", { className: "status status-" + (dryRun ? "info" : "success"),
      text: (dryRun ? "Check finished, nothing was changed. An import would do this: "
        : "Import finished: ") + counts.join(", ") + "." }));

    var list = el("dl", { className: "import-summary" });
    IMPORT_GROUPS.forEach(function (group) {
      var items = body[group[0]];
      if (!Array.isArray(items) || !items.length) {
        return;
      }
      var entries = el("ul");
      items.forEach(function (item) {
        entries.appendChild(el("li", { text: summariseRule(item) }));
      });
      list.appendChild(el("dt", { text: group[1] + " (" + items.length + ")" }));
      list.appendChild(el("dd", null, entries));
    });
    results.appendChild(list);
  }

  function runImport(event) {
    event.preventDefault();
    var submitter = event.submitter || byId("import-check");
    var dryRun = submitter.getAttribute("data-dry-run") === "true";
    var file = byId("import-file").files[0];
    var results = byId("import-results");
    clear(results);

    if (!file) {
      results.appendChild(el("p", { className: "status status-error", text: "Choose a rule set file first." }));
      byId("import-file").focus();
      return;
    }

    file.text().then(function (text) {
      var params = new URLSearchParams({ mode: byId("import-mode").value });
      if (dryRun) {
        params.set("dryRun", "true");
      }
      return request("POST", "import?" + params.toString(), { text: text });
    }).then(function (result) {
      renderImport(result.body, dryRun);
      if (!dryRun) {
        return loadRules();
      }
      return null;
    }).catch(function (error) {
      var text = (dryRun ? "Check failed: " : "Import failed, nothing was changed: ") + error.message;
      var errors = error.body && error.body.errors;
      clear(results);
      results.appendChild(el("p", { className: "status status-error", text: text }));
      if (errors) {
        var list = el("ul", { className: "import-errors" });
        Object.keys(errors).forEach(function (field) {
          list.appendChild(el("li", { text: field + ": " + [].concat(errors[field]).map(displayValue).join(" ") }));
        });
        results.appendChild(list);
      }
    });
  }

  /* ---- Wiring ------------------------------------------------------------ */

  function start() {
    byId("filters").addEventListener("submit", function (event) {
      event.preventDefault();
      loadRules();
    });
    byId("filters").addEventListener("reset", function () {
      window.setTimeout(loadRules, 0);
    });
    byId("rules-table").querySelector("thead").addEventListener("click", onSortClick);
    byId("rules-body").addEventListener("click", onRowAction);
    byId("new-rule").addEventListener("click", function () { openEditor(null); });
    byId("all-history").addEventListener("click", function () { showHistory(null); });

    ruleForm().addEventListener("submit", saveRule);
    ruleForm().elements.scope.addEventListener("change", syncProjectControl);
    ruleForm().elements.dicomTag.addEventListener("input", onTagInput);
    byId("cancel-edit").addEventListener("click", closeEditor);
    byId("preview-candidate").addEventListener("click", function () {
      byId("preview-include-editor").checked = true;
      byId("preview").scrollIntoView();
      if (state.previewFiles.length) {
        runPreview();
      } else {
        byId("preview-files").focus();
      }
    });
    byId("editor").addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        closeEditor();
      }
    });

    byId("delete-dialog").addEventListener("close", onDeleteDialogClose);

    var dropZone = byId("drop-zone");
    dropZone.addEventListener("dragover", onDragOver);
    dropZone.addEventListener("dragenter", onDragOver);
    dropZone.addEventListener("dragleave", onDragLeave);
    dropZone.addEventListener("drop", onDrop);
    byId("preview-files").addEventListener("change", function (event) {
      setPreviewFiles(event.target.files);
    });
    byId("preview-form").addEventListener("submit", runPreview);
    byId("import-form").addEventListener("submit", runImport);

    // Tests and scripts wait for this mark before they click anything.
    loadRules().then(function () {
      document.documentElement.setAttribute("data-ready", "true");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
