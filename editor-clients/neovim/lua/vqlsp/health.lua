--- :checkhealth vqlsp
local M = {}

local INSTALL = 'Install the server from a vqlsp checkout (`./scripts/demo` builds `.venv/bin/vqlsp`; or `pip install -e <checkout>`), '
  .. "then pass its path: require('vqlsp').setup({ cmd = { '/path/to/venv/bin/vqlsp', 'serve' } })"

local function resolved_config()
  local ok, cfg = pcall(function()
    return vim.lsp.config.vqlsp
  end)
  return ok and cfg or nil
end

function M.check()
  local health = vim.health
  health.start('vqlsp: Neovim')
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()) .. ' (>= 0.11)')
  else
    health.error('Neovim >= 0.11 is required (vim.lsp.config / vim.lsp.enable)')
    return
  end

  health.start('vqlsp: server command')
  local cfg = resolved_config()
  if not cfg or type(cfg.cmd) ~= 'table' then
    health.error('no vqlsp LSP config found', { "call require('vqlsp').setup()" })
    return
  end
  local cmd = cfg.cmd
  health.info('cmd: ' .. table.concat(cmd, ' '))
  if vim.fn.executable(cmd[1]) == 0 then
    health.error('`' .. cmd[1] .. '` is not executable or not on PATH', { INSTALL })
  else
    local probe = cmd[2] == '-m' and { cmd[1], '-c', 'import vqlsp; print(vqlsp.__version__)' }
      or { cmd[1], '--version' }
    local ok, result = pcall(function()
      return vim.system(probe, { text = true }):wait(20000)
    end)
    if ok and result.code == 0 then
      health.ok('server: ' .. vim.trim(result.stdout or ''))
    else
      local detail = ok and vim.trim((result.stderr or '') .. (result.stdout or '')) or tostring(result)
      health.error('`' .. table.concat(probe, ' ') .. '` failed: ' .. detail, { INSTALL })
    end
  end

  health.start('vqlsp: settings')
  local settings = cfg.init_options or {}
  if type(settings.model) == 'string' then
    if vim.uv.fs_stat(vim.fs.joinpath(settings.model, 'config.json')) then
      health.ok('model: ' .. settings.model)
    else
      health.error('model: ' .. settings.model .. ' is not a vqlsp checkpoint directory (no config.json)')
    end
  else
    health.ok('model: the default model shipped with vqlsp')
  end
  health.info('filetypes: ' .. table.concat(cfg.filetypes or {}, ', '))
  local encodings = vim.tbl_get(cfg, 'capabilities', 'general', 'positionEncodings')
  health.info('offered position encodings: ' .. (encodings and table.concat(encodings, ', ') or 'Neovim default'))

  health.start('vqlsp: running servers')
  local clients = vim.lsp.get_clients({ name = 'vqlsp' })
  if #clients == 0 then
    health.info('no vqlsp server running (open a ' .. table.concat(cfg.filetypes or {}, '/') .. ' buffer)')
  end
  for _, client in ipairs(clients) do
    local version = client.server_info and client.server_info.version or '?'
    health.ok(string.format('client %d: server %s, %d buffer(s), position encoding %s',
      client.id, version, vim.tbl_count(client.attached_buffers), client.offset_encoding))
  end
end

return M
