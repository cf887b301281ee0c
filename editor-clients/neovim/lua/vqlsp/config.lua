--- Options of require('vqlsp').setup() and their translation to a vim.lsp.Config.
---
--- `settings` is the server's own option object (camelCase, as in the protocol
--- contract: model, heads, device, debounceMs, positionPolicy, settleMs, memoryBudgetMb,
--- sectionTokens, languages, excludePatterns, maxFileLength,
--- diagnostics = { threshold, severity, unit, labels = { [label] = { threshold, severity } } }),
--- every key optional: the server's defaults (editor-clients/README.md) fill the rest.
--- It is sent as initializationOptions and as the "vqlsp" settings section
--- (workspace/didChangeConfiguration and workspace/configuration).
local M = {}

--- Neovim filetype -> LSP languageId the server knows.
M.language_ids = {
  text = 'plaintext',
  markdown = 'markdown',
  rst = 'restructuredtext',
  tex = 'latex',
  gitcommit = 'git-commit',
}

M.filetypes = { 'text', 'markdown', 'rst', 'tex', 'gitcommit' }

---@param _bufnr integer
---@param filetype string
---@return string
function M.language_id(_bufnr, filetype)
  return M.language_ids[filetype] or filetype
end

---@class vqlsp.Options
---@field cmd? string[]            command that starts the server (default: { 'vqlsp', 'serve' })
---@field python? string           run `<python> -m vqlsp serve` instead (when cmd is not given)
---@field settings? table          server options, camelCase (see above)
---@field filetypes? string[]      filetypes to attach to
---@field position_encodings? string[]  offered position encodings (default: Neovim's utf-8, utf-16, utf-32)
---@field virtual_text? boolean    show the document label as virtual text on the first line
---@field on_classification? fun(c: table, bufnr: integer)  called for every new classification
M.defaults = {
  cmd = nil,
  python = nil,
  settings = {},
  filetypes = M.filetypes,
  position_encodings = nil,
  virtual_text = false,
  on_classification = nil,
}

--- Options in effect (setup() replaces them).
M.options = vim.deepcopy(M.defaults)

---@param opts vqlsp.Options
---@return string[]
function M.command(opts)
  if opts.cmd and #opts.cmd > 0 then
    return opts.cmd
  end
  if opts.python and opts.python ~= '' then
    return { opts.python, '-m', 'vqlsp', 'serve' }
  end
  return { 'vqlsp', 'serve' }
end

--- The vim.lsp.Config for these options (merged over lsp/vqlsp.lua by vim.lsp.config).
---@param opts vqlsp.Options
---@return vim.lsp.Config
function M.lsp_config(opts)
  local settings = vim.tbl_isempty(opts.settings or {}) and vim.empty_dict() or opts.settings
  local config = {
    cmd = M.command(opts),
    filetypes = opts.filetypes,
    init_options = settings,
    settings = { vqlsp = settings },
  }
  if opts.position_encodings then
    config.capabilities = { general = { positionEncodings = opts.position_encodings } }
  end
  return config
end

---@param opts? vqlsp.Options
---@return vqlsp.Options
function M.resolve(opts)
  opts = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  vim.validate('cmd', opts.cmd, 'table', true)
  vim.validate('python', opts.python, 'string', true)
  vim.validate('settings', opts.settings, 'table')
  vim.validate('filetypes', opts.filetypes, 'table')
  vim.validate('position_encodings', opts.position_encodings, 'table', true)
  vim.validate('virtual_text', opts.virtual_text, 'boolean')
  vim.validate('on_classification', opts.on_classification, 'function', true)
  return opts
end

return M
