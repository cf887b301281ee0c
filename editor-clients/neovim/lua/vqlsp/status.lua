--- The latest `vqlsp/classification` of each buffer: a statusline component,
--- optional virtual text, and a `User VqlspClassification` autocmd.
local config = require('vqlsp.config')

local M = {}

M.ns = vim.api.nvim_create_namespace('vqlsp.classification')

---@type table<integer, table> bufnr -> classification params
M.results = {}

local function has_label(c)
  return type(c.label) == 'string'
end

local function probability(c)
  return has_label(c) and (c.probabilities or {})[c.label] or 0
end

--- "sport 87%" ("no label" for a model without a document head)
---@param c table
---@return string
function M.format(c)
  if not has_label(c) then
    return 'no label'
  end
  return string.format('%s %d%%', c.label, math.floor(probability(c) * 100 + 0.5))
end

local function show_virtual_text(bufnr, c)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  if config.options.virtual_text and vim.api.nvim_buf_line_count(bufnr) > 0 then
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, 0, 0, {
      virt_text = { { 'vqlsp: ' .. M.format(c), 'DiagnosticHint' } },
      virt_text_pos = 'right_align',
      hl_mode = 'combine',
    })
  end
end

--- Pulls the buffer's diagnostics again. A settled classification (the server
--- re-indexed drifted positions after a pause) or a reload (new model or heads)
--- brings new results for the same version, and Neovim 0.11 pulls only on its own
--- events (it does not take workspace/diagnostic/refresh).
local function pull_diagnostics(bufnr, client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  if client and client:supports_method('textDocument/diagnostic', bufnr) then
    client:request('textDocument/diagnostic', { textDocument = vim.lsp.util.make_text_document_params(bufnr) }, nil, bufnr)
  end
end

--- Handler of the `vqlsp/classification` notification.
function M.on_classification(err, result, ctx)
  if err or type(result) ~= 'table' or type(result.uri) ~= 'string' then
    return
  end
  if type(result.label) ~= 'string' and result.label ~= vim.NIL then
    return
  end
  local bufnr = vim.uri_to_bufnr(result.uri)
  if not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  local known = M.results[bufnr]
  if known and type(known.version) == 'number' and type(result.version) == 'number' and result.version < known.version then
    return -- an older version's result arriving late
  end
  M.results[bufnr] = result
  show_virtual_text(bufnr, result)
  -- New results for a version already classified (a settle, or a model / heads reload):
  -- the diagnostics changed too, and Neovim would not pull them before the next edit.
  local again = known ~= nil and known.version == result.version
  if (result.settled == true or again) and ctx and ctx.client_id then
    pull_diagnostics(bufnr, ctx.client_id)
  end
  if config.options.on_classification then
    config.options.on_classification(result, bufnr)
  end
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'VqlspClassification',
    modeline = false,
    data = { bufnr = bufnr, classification = result },
  })
  vim.cmd.redrawstatus({ bang = true })
end

--- The buffer's whole text as Neovim itself sends it (line ending, final newline).
local function full_text(bufnr)
  local eol = ({ dos = '\r\n', mac = '\r' })[vim.bo[bufnr].fileformat] or '\n'
  local text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, true), eol)
  return vim.bo[bufnr].eol and text .. eol or text
end

--- Handler of the `vqlsp/resync` notification: the server lost track of a document
--- (a change it could not apply) and waits for its whole text; send it as a fresh
--- didOpen, which replaces the server's copy (later incremental changes apply on top).
function M.on_resync(err, result, ctx)
  if err or type(result) ~= 'table' or type(result.uri) ~= 'string' then
    return
  end
  local bufnr = vim.uri_to_bufnr(result.uri)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if not client or not vim.api.nvim_buf_is_loaded(bufnr) then
    return
  end
  vim.notify(string.format('vqlsp: resending %s (%s)', vim.api.nvim_buf_get_name(bufnr), tostring(result.reason)),
    vim.log.levels.WARN)
  client:notify('textDocument/didOpen', {
    textDocument = {
      uri = result.uri,
      languageId = client.config.get_language_id(bufnr, vim.bo[bufnr].filetype),
      version = vim.lsp.util.buf_versions[bufnr],
      text = full_text(bufnr),
    },
  })
end

---@param bufnr integer
function M.clear(bufnr)
  M.results[bufnr] = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Statusline component: "vqlsp: sport 87%", "vqlsp: …" while the first result
--- is pending, "" in buffers vqlsp is not attached to.
---@param bufnr? integer
---@return string
function M.statusline(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local c = M.results[bufnr]
  if c then
    return 'vqlsp: ' .. M.format(c)
  end
  if #vim.lsp.get_clients({ bufnr = bufnr, name = 'vqlsp' }) > 0 then
    return 'vqlsp: …'
  end
  return ''
end

return M
